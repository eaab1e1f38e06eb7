#!/bin/sh
# meson install step (dist/meson.build): put each default file in its place
# under /etc unless the operator already has one there. Arguments: pairs of
# absolute paths, FROM TO. meson sets DESTDIR for a staged install.
set -eu
while [ $# -ge 2 ]; do
  src=$1 dst=$2
  shift 2
  if [ -e "${DESTDIR:-}$dst" ]; then
    echo "framegate: keeping $dst (the default is $src)"
  else
    mkdir -p "$(dirname "${DESTDIR:-}$dst")"
    cp "${DESTDIR:-}$src" "${DESTDIR:-}$dst"
    echo "framegate: installed $dst"
  fi
done
