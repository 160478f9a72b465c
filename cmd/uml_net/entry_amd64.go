package main

// entry is the pre-runtime entry point (entry_amd64.s).
func entry()
