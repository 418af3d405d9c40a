#!/bin/bash
# The machine's serial console: a banner, then echoes each line (CR or LF ends one).
printf 'onebox-sim machine console (boot device %s, pid %s)\r\n' "$(cat "$MACHINE_DIR/boot" 2>/dev/null || echo default)" $$
# Like a booting machine, it keeps writing to its console: a status line every 2 s.
( n=0; while sleep 2; do n=$((n+2)); printf 'onebox-sim machine up %s s\r\n' "$n"; done ) &
trap 'kill $! 2>/dev/null' EXIT
line=""
while IFS= read -r -n1 -d '' c; do
  if [[ "$c" == $'\r' || "$c" == $'\n' ]]; then
    [[ -z "$line" ]] && continue
    printf 'machine got: %s\r\n' "$line"
    line=""
  else
    line+="$c"
  fi
done
