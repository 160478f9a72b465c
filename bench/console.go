package main

// consoleScript is the console benchmark's guest: output throughput through
// a console line (64 MiB written with dd to /dev/tty1, con1=null): the
// guest's tty layer plus, for ours, the pty to the kernel process that
// drains it.
const consoleScript = `T=/bench/benchtool
t0=$($T now); dd if=/dev/zero of=/dev/tty1 bs=64k count=1024 2>/dev/null; t1=$($T now)
echo "CON write_ns=$((t1-t0))"
poweroff -f
`
