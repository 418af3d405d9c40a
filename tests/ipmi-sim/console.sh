#!/bin/bash
# The machine's serial console: a banner, then echoes each line (CR or LF ends one).
printf 'onebox-sim machine console (boot device %s, pid %s)\r\n' "$(cat "$MACHINE_DIR/boot" 2>/dev/null || echo default)" $$
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
