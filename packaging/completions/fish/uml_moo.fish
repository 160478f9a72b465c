# fish completion for uml_moo [-b BACKING] [-d] COW [NEW] and --info [--json].
complete -c uml_moo -o b -r -F -d 'backing file to use instead of the recorded one'
complete -c uml_moo -o d -d 'merge in place into the backing file'
complete -c uml_moo -l info -d 'describe the COW file'
complete -c uml_moo -l json -d 'with --info, print JSON'
complete -c uml_moo -l help -d 'show the usage'
complete -c uml_moo -l version -d 'show the version'
