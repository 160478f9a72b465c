# fish completion for uml_watchdog -pid PID | -mconsole SOCKET.
complete -c uml_watchdog -o pid -x -a '(__fish_complete_pids)' -d 'process ID of the UML machine'
complete -c uml_watchdog -o mconsole -r -F -d 'mconsole notify socket'
complete -c uml_watchdog -l help -d 'show the usage'
complete -c uml_watchdog -l version -d 'show the version'
