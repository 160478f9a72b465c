//go:build !amd64

package mountemu

var hostSysnums *sysnums
