# fish completion for uml_mkcow [-f] COW BACKING.
complete -c uml_mkcow -s f -d 'overwrite an existing COW file'
complete -c uml_mkcow -l help -d 'show the usage'
complete -c uml_mkcow -l version -d 'show the version'
