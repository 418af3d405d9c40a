#!/bin/sh
# The simulated physical machine: powered on == this process group is alive. Its serial
# console is a TCP port ($CONSOLE_PORT) that the BMC's Serial-over-LAN connects to.
HERE=$(cd "$(dirname "$0")" && pwd)
echo "$(date +%s.%N) booting (pid $$)"
trap 'echo "$(date +%s.%N) got SIGTERM, halting"; exit 0' TERM INT
socat TCP-LISTEN:"${CONSOLE_PORT:?}",bind=127.0.0.1,reuseaddr,fork EXEC:"$HERE/console.sh",stderr &
wait $!
