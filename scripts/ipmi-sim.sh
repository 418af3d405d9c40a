#!/bin/bash
# A simulated BMC for tests and benchmarks: Debian's ipmi_sim (package openipmi) on loopback,
# whose power-on starts a process standing in for the machine, with a serial console on SOL.
#
#   scripts/ipmi-sim.sh start DIR UDP_PORT CONSOLE_PORT   prints the ipmi_sim PID once it answers
#   scripts/ipmi-sim.sh stop DIR                          stops the machine and the simulator
#
# Credentials: admin / password (ADMINISTRATOR). Everything lives under DIR: lan.conf, state/,
# machine/ (pid, boot, events.log, machine.log), sim.pid, sim.log.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)/tests/ipmi-sim
cmd=${1:?start|stop}; DIR=${2:?DIR}
case $cmd in
start)
  UDP=${3:?UDP_PORT}; CON=${4:?CONSOLE_PORT}
  command -v ipmi_sim >/dev/null || { echo "ipmi_sim not installed (apt-get install openipmi)" >&2; exit 3; }
  mkdir -p "$DIR/state/ipmi_sim/onebox" "$DIR/machine"
  DIR=$(cd "$DIR" && pwd)
  sdrcomp -o "$DIR/state/ipmi_sim/onebox/sdr.20.main" "$HERE/sim.sdrs" >/dev/null
  cat > "$DIR/lan.conf" <<CONF
name "onebox"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $UDP
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "MACHINE_DIR=$DIR/machine CONSOLE_PORT=$CON $HERE/chassis.sh 0x20"
  sol "tcp:127.0.0.1:$CON" 115200 history=4000
  user 2 true "admin" "password" admin 10 none md2 md5 straight
  user 3 true "oper" "operpw" operator 10 md5
CONF
  ipmi_sim -c "$DIR/lan.conf" -f "$HERE/sim.emu" -s "$DIR/state" -n </dev/null >"$DIR/sim.log" 2>&1 &
  pid=$!
  echo $pid > "$DIR/sim.pid"
  for _ in $(seq 100); do
    if ss -lunH "sport = :$UDP" 2>/dev/null | grep -q .; then echo $pid; exit 0; fi
    kill -0 $pid 2>/dev/null || { cat "$DIR/sim.log" >&2; exit 1; }
    sleep 0.05
  done
  echo "ipmi_sim did not open UDP port $UDP" >&2; kill $pid; exit 1 ;;
stop)
  # The simulator first (it could still power the machine on from queued requests), then the
  # machine's process group.
  if [ -f "$DIR/sim.pid" ]; then
    pid=$(cat "$DIR/sim.pid")
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  if [ -f "$DIR/machine/pid" ]; then kill -KILL -"$(cat "$DIR/machine/pid")" 2>/dev/null || true; fi ;;
*) echo "usage: $0 start DIR UDP_PORT CONSOLE_PORT | stop DIR" >&2; exit 2 ;;
esac
