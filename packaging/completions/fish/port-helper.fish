# fish completion for port-helper (/usr/lib/uml/port-helper).
complete -c port-helper -o uml-socket -r -F -d 'unix datagram socket of the UML kernel'
complete -c port-helper -l help -d 'show the usage'
complete -c port-helper -l version -d 'show the version'
