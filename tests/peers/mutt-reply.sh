#!/usr/bin/env bash
# mutt-reply.sh — real mutt answers the first message of a Maildir with `r` (reply), quoting it
# below the typed text (as a top-posting agent would), and sends the reply over SMTP. mutt is
# driven through tmux, so no human is needed. Adapted from the shared peers' mutt-reply.sh.
#
# Usage: mutt-reply.sh MAILDIR SMTP_PORT FROM BODY_FILE SCRATCH_DIR
#   BODY_FILE  the text typed above the quote; mutt's editor prepends it to the draft
# Needs: mutt, tmux (scripts/test-deps.sh installs them).
set -euo pipefail
MD=${1:?usage: mutt-reply.sh MAILDIR PORT FROM BODY_FILE SCRATCH}; PORT=${2:?}; FROM=${3:?}
BODY=${4:?}; S=${5:?}
mkdir -p "$S"
cat > "$S/editor.sh" <<ED
#!/bin/sh
# mutt's editor: the typed text on top, mutt's draft (attribution + quote) below.
{ cat "$BODY"; echo; cat "\$1"; } > "\$1.new" && mv "\$1.new" "\$1"
ED
chmod +x "$S/editor.sh"
cat > "$S/muttrc" <<RC
set smtp_url = "smtp://127.0.0.1:$PORT"
set from = "$FROM"
set realname = "Alice Agent"
set use_from = yes
set hostname = "${FROM#*@}"
set record = ""
set ssl_starttls = no
set ssl_force_tls = no
set editor = "$S/editor.sh"
set fast_reply = yes
set abort_unmodified = no
set include = yes
set reply_to = yes
set askcc = no
set mbox_type = Maildir
set folder = "$S"
set spoolfile = "$MD"
set sort = date
set move = no
unset wait_key
unset mark_old
RC
sess=pd-mutt-$$
tmux new-session -d -s "$sess" -x 200 -y 50 "HOME=$S mutt -F $S/muttrc -f $MD; echo done > $S/$sess.done"
trap 'tmux kill-session -t "$sess" 2>/dev/null || true; rm -f "$S/$sess.done"' EXIT
wait_for() { for _ in $(seq 1 200); do tmux capture-pane -p -t "$sess" | grep -q "$1" && return 0; sleep 0.1; done
             echo "timeout waiting for '$1'" >&2; tmux capture-pane -p -t "$sess" >&2; return 1; }
wait_for 'r:Reply'
tmux send-keys -t "$sess" r
wait_for 'y:Send'
tmux send-keys -t "$sess" y
wait_for 'Mail sent'
tmux send-keys -t "$sess" q
for _ in $(seq 1 50); do [[ -f $S/$sess.done ]] && break; tmux send-keys -t "$sess" y 2>/dev/null || true; sleep 0.1; done
echo "reply sent"
