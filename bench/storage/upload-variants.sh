#!/bin/bash
# usage: ab.sh ROUNDS variant...   variant = label:ENV=..,ENV=..  (label floor/base special)
R=$1; shift
for r in $(seq $R); do
  for v in "$@"; do
    label=${v%%:*}; envs=${v#*:}; [ "$envs" = "$v" ] && envs=""
    dist=$(dirname $0)/../../dist; mode=drv
    [ "$label" = floor ] && mode=floor
    [ "$label" = base ] && dist=${BASE_DIST:-/tmp/s13-base/dist}
    out=$(env -u NODE_EXTRA_CA_CERTS ${envs//,/ } nice -n 5 node $(dirname $0)/upload-variants-one.mjs $mode $dist)
    echo "$label $out"
  done
done
