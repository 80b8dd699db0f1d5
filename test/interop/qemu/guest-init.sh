#!/bin/sh
# /init of the test guest (busybox-static). It keeps a working set of `ws` MiB in
# RAM dirty: each tick rewrites one `chunk`-MiB slot with random bytes and records
# its MD5, then checks the oldest slot against the MD5 recorded when it was
# written. A migration that lost or mixed up a page shows as verify=BAD on the
# destination. Every tick is one line on the serial console:
#   tick N verify=ok|BAD|none
# Parameters come from the kernel command line (the kernel hands unknown
# key=value words to init as environment): ws, chunk (MiB), nap (seconds
# between ticks) and ticks (power off after that many; 0 runs forever).
export PATH=/bin
mount -t proc proc /proc
mount -t devtmpfs dev /dev 2>/dev/null
ws=${ws:-64}
chunk=${chunk:-4}
nap=${nap:-0}
ticks=${ticks:-0}
slots=$((ws / chunk))
[ "$slots" -ge 2 ] || slots=2
echo "guest up ws=${ws}MiB chunk=${chunk}MiB slots=$slots" >/dev/console
n=0
while :; do
  n=$((n + 1))
  slot=$((n % slots))
  dd if=/dev/urandom of=/mem/$slot bs=1M count="$chunk" 2>/dev/null
  md5sum /mem/$slot | cut -d' ' -f1 >/mem/$slot.md5
  old=$(((n + 1) % slots))
  verify=none
  if [ -f /mem/$old.md5 ]; then
    if [ "$(md5sum /mem/$old | cut -d' ' -f1)" = "$(cat /mem/$old.md5)" ]; then verify=ok; else verify=BAD; fi
  fi
  echo "tick $n verify=$verify" >/dev/console
  if [ "$ticks" -gt 0 ] && [ "$n" -ge "$ticks" ]; then poweroff -f; fi
  [ "$nap" = 0 ] || sleep "$nap"
done
