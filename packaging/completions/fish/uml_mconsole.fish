# fish completion for uml_mconsole: umids from ~/.uml, then mconsole commands.
complete -c uml_mconsole -l uml-dir -r -a '(__fish_complete_directories)' -d 'also look for machines here'
complete -c uml_mconsole -l timeout -x -d 'reply timeout, e.g. 5s'
complete -c uml_mconsole -l list -d 'list the machines'
complete -c uml_mconsole -l help -d 'show the usage'
complete -c uml_mconsole -l version -d 'show the version'
complete -c uml_mconsole -n 'test (count (commandline -opc)) -eq 1' -f -a '(for d in ~/.uml/*/; basename $d; end)' -d machine
complete -c uml_mconsole -n 'test (count (commandline -opc)) -eq 2' -f -a 'version halt reboot cad config remove sysrq stop go log proc stack help int switch quit mconsole-version' -d command
