# fish completion for uml_net, the setuid helper run by UML kernels.
complete -c uml_net -f
complete -c uml_net -n '__fish_is_first_arg' -a 4 -d 'protocol version'
complete -c uml_net -n '__fish_is_first_arg' -l help -d 'show the usage'
complete -c uml_net -n '__fish_is_first_arg' -l version -d 'show the version'
complete -c uml_net -n 'test (count (commandline -opc)) -eq 2' -a 'tuntap add del ethertap slip' -d transport
