#!/usr/bin/env sh
# Install the unpacked fer-demo folder for the current user: a launcher in ~/.local/bin and a
# desktop entry, so the app starts from the applications menu (double-click). Run from the folder.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$HOME/.local/bin" "$HOME/.local/share/applications"
ln -sf "$here/fer-demo" "$HOME/.local/bin/fer-demo"
sed "s|^Exec=.*|Exec=$here/fer-demo|" "$here/fer-demo.desktop" > "$HOME/.local/share/applications/fer-demo.desktop"
echo "fer-demo installed: menu entry 'FER demo', command $HOME/.local/bin/fer-demo"
echo "If Qt reports a missing xcb library: sudo apt install libxcb-cursor0 libxkbcommon-x11-0"
