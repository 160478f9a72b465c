# fish completion for umlkit's linux (User-Mode Linux command line).
for c in linux linux.umlkit
    complete -c $c -f -a 'ubd0= ubd1= mem= umid= uml_dir= con= con0= ssl= eth0= hostfs= xterm= mconsole=notify: root= console=' -d 'UML option'
    complete -c $c -f -a 'quiet noreboot' -d 'UML flag'
    complete -c $c -f -a 'eth0=daemon eth0=tuntap eth0=mcast eth0=ucast eth0=vde' -d 'network transport'
    complete -c $c -f -a 'con0=fd:0,fd:1 con=null con=pts con=xterm ssl=null ssl=pts' -d 'channel'
    complete -c $c -l help -d 'show the options'
    complete -c $c -l version -d 'show the version'
end
