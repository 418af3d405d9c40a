#!/bin/bash
# chassis_control program of the simulated BMC (ipmi_sim popen()s it):
#   chassis.sh <mc> get power|boot           -> "power:0|1", "boot:<device>"
#   chassis.sh <mc> set power 0|1 | reset 1 | boot <dev> | shutdown 1 | identify "<s> <force>"
# The machine's state lives in $MACHINE_DIR: pid (its process group), boot, events.log, console.log.
# $CONSOLE_PORT is the TCP port of the machine's serial console, which the BMC's SOL connects to.
HERE=$(cd "$(dirname "$0")" && pwd)
D=${MACHINE_DIR:?MACHINE_DIR must be set}
mkdir -p "$D"
LOG=$D/events.log
mc=$1; op=$2; shift 2
# A process of the group that is not a zombie (nothing may reap the machine's processes).
alive() { ps -o stat= --sid "$1" 2>/dev/null | grep -qv '^Z'; }
running() { [ -f "$D/pid" ] && alive "$(cat "$D/pid")"; }
power_on() {
  running && return 0
  # ipmi_sim's sockets are inherited: close every fd > 2 so the machine does not hold the
  # BMC's ports; setsid gives the machine its own process group (pid == pgid).
  ( for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$HERE/machine.sh" </dev/null >>"$D/machine.log" 2>&1 ) &
  echo $! > "$D/pid"
  echo "$(date +%s.%N) power on pid=$(cat "$D/pid") bootdev=$(cat "$D/boot" 2>/dev/null || echo default)" >> "$LOG"
}
power_off() {
  running || return 0
  p=$(cat "$D/pid")
  kill -TERM -"$p" 2>/dev/null
  n=0; while alive "$p" && [ $n -lt 40 ]; do sleep 0.05; n=$((n+1)); done
  alive "$p" && kill -KILL -"$p"
  rm -f "$D/pid"
  echo "$(date +%s.%N) power off pid=$p" >> "$LOG"
}
case $op in
get)
  for p in "$@"; do
    case $p in
      power) if running; then echo "power:1"; else echo "power:0"; fi ;;
      boot)  echo "boot:$(cat "$D/boot" 2>/dev/null || echo default)" ;;
      *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
set)
  while [ $# -gt 0 ]; do
    p=$1; v=$2; shift 2
    case $p in
      power) if [ "$v" = 1 ]; then power_on; else power_off; fi ;;
      reset) power_off; power_on ;;
      shutdown) power_off ;;
      boot) echo "$v" > "$D/boot"; echo "$(date +%s.%N) bootdev=$v" >> "$LOG" ;;
      identify) echo "$(date +%s.%N) identify $v" >> "$LOG" ;;
      *) echo "Invalid parameter: $p"; exit 1 ;;
    esac
  done ;;
check) exit 1 ;;
*) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
