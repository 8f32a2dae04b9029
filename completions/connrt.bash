# bash completion for connrt(1). Installed as
# $(PREFIX)/share/bash-completion/completions/connrt; to try it from the source tree:
#   source completions/connrt.bash
#
# Completes command names; connection ids and connector ids (from `connrt list --json`)
# for the commands that take an ID (exec: any number, then a command after --); *.lua
# files and directories for run, authorize and update's connector;
# each command's options; HTTP methods for request's METHOD. Needs nothing but bash,
# grep and sed (not the bash-completion package's helpers, nor jq).
#
# completions/connrt.bash is written by `make completion` (tools/completion.lua) from
# completions/connrt.bash.in and the one definition of the commands (lua/connrt/help.lua)
# and their options (lua/connrt/options.lua): edit those, not connrt.bash.

_connrt_commands="run script authorize connect request token exec git-credential credential-process proxy refresh revoke delete update rekey store list show check redirect-url version help"
_connrt_methods="GET POST PUT PATCH DELETE HEAD OPTIONS"

# The options of one command; those that take a value are in _connrt_valued.
_connrt_options() {
  case "$1" in
    run) echo "--field --field-file --client-id --client-secret-file --client-secret --scope --param --paste --replace --timeout --no-browser --json" ;;
    authorize) echo "--field --field-file --client-id --client-secret-file --client-secret --scope --param --timeout --no-browser --json" ;;
    connect) echo "--print-connector --client-id --client-secret-file --client-secret --scope --param --paste --replace --timeout --no-browser --json" ;;
    request) echo "-H --header -d --data --json-body -i --include --retries --max-wait --json" ;;
    exec) echo "--env --mask" ;;
    git-credential) echo "--connection" ;;
    credential-process) echo "--format" ;;
    proxy) echo "--socket --listen --key-file --connection --workers --max-body --max-response --timeout --idle --refresh-ahead" ;;
    update) echo "--replace" ;;
    rekey) echo "--new-key-file" ;;
    store) echo "--from --to --to-key-file" ;;
    list | show) echo "--json" ;;
  esac
}
_connrt_valued=" --field --field-file --client-id --client-secret-file --client-secret --scope --param --timeout -H --header -d --data --json-body --retries --max-wait --env --connection --format --socket --listen --key-file --workers --max-body --max-response --idle --refresh-ahead --new-key-file --from --to --to-key-file "

# Connection ids and connector ids, one per line. `connrt list --json` prints one line:
# an array of objects with "id" (the connector's id, "-", 8 hex digits) and "connector".
# Values kept with a connection may have keys of the same names, so an id counts only
# when its connector is named as a "connector" too, and a connector only when it has
# such an id.
_connrt_ids() {
  local json connectors ids
  json=$(command connrt list --json 2>/dev/null) || return 0
  connectors=$(printf '%s\n' "$json" | grep -o '"connector":"[a-z0-9_-]*"' | sed 's/^"connector":"//; s/"$//')
  ids=$(printf '%s\n' "$json" | grep -o '"id":"[a-z0-9_-]*-[0-9a-f]\{8\}"' | sed 's/^"id":"//; s/"$//' |
    while IFS= read -r id; do
      case $'\n'"$connectors"$'\n' in
        *$'\n'"${id%-*}"$'\n'*) printf '%s\n' "$id" ;;
      esac
    done)
  [ -n "$ids" ] || return 0
  printf '%s\n' "$ids"
  printf '%s\n' "$ids" | sed 's/-[0-9a-f]\{8\}$//' | sort -u
}

# Adds each line of standard input that starts with $1 to COMPREPLY.
_connrt_add() {
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && [[ "$line" == "$1"* ]] && COMPREPLY+=("$line")
  done
}

_connrt() {
  COMPREPLY=()
  local cur="${COMP_WORDS[COMP_CWORD]}"
  local prev=""
  [ "$COMP_CWORD" -gt 0 ] && prev="${COMP_WORDS[COMP_CWORD - 1]}"
  # bash splits --opt=value into "--opt" "=" "value"
  [ "$cur" = "=" ] && cur="" && prev="${COMP_WORDS[COMP_CWORD - 1]}"
  [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ] && prev="${COMP_WORDS[COMP_CWORD - 2]}"

  if [ "$COMP_CWORD" -le 1 ]; then
    if [[ "$cur" == -* ]]; then
      mapfile -t COMPREPLY < <(compgen -W "--help --version -h --json --store --verbose -v" -- "$cur")
    else
      mapfile -t COMPREPLY < <(compgen -W "$_connrt_commands" -- "$cur")
    fi
    return 0
  fi

  local cmd="${COMP_WORDS[1]}"
  case "$cmd" in --help | -h) cmd=help ;; --version) cmd=version ;; esac

  # exec: after --, the command and its own arguments
  local i
  if [ "$cmd" = exec ]; then
    for ((i = 2; i < COMP_CWORD; i++)); do
      if [ "${COMP_WORDS[i]}" = "--" ]; then
        compopt -o default 2>/dev/null
        [ "$i" -eq $((COMP_CWORD - 1)) ] && mapfile -t COMPREPLY < <(compgen -c -- "$cur")
        return 0
      fi
    done
  fi

  # the value of an option: files where it is a path, nothing to offer otherwise
  if [[ "$_connrt_valued" == *" $prev "* ]]; then
    case "$prev" in
      --format)
        mapfile -t COMPREPLY < <(compgen -W "json kubernetes" -- "$cur")
        ;;
      --connection)
        _connrt_add "$cur" < <(_connrt_ids)
        ;;
      --client-secret-file | --socket | --key-file | --new-key-file | --to-key-file)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
        ;;
    esac
    return 0
  fi

  if [[ "$cur" == -* ]]; then
    mapfile -t COMPREPLY < <(compgen -W "$(_connrt_options "$cmd")" -- "$cur")
    return 0
  fi

  # which positional argument this is: count the words before it that are neither
  # options nor option values
  local word npos=0
  for ((i = 2; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    if [ "$word" = "=" ]; then
      ((i++)) # the value of --opt=value
    elif [[ "$_connrt_valued" == *" $word "* ]]; then
      [ "${COMP_WORDS[i + 1]}" = "=" ] || ((i++))
    elif [[ "$word" != -* ]]; then
      ((npos++))
    fi
  done

  case "$cmd" in
    run | authorize | script)
      if [ "$npos" -eq 0 ]; then
        # a connector or script: *.lua files and directories to look in
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <({ compgen -d -- "$cur"; compgen -f -X '!*.lua' -- "$cur"; } | sort -u)
      elif [ "$cmd" = script ]; then
        # a pipeline script's own arguments
        compopt -o default 2>/dev/null
      fi
      ;;
    check)
      # connector files, any number of them
      compopt -o filenames 2>/dev/null
      mapfile -t COMPREPLY < <({ compgen -d -- "$cur"; compgen -f -X '!*.lua' -- "$cur"; } | sort -u)
      ;;
    request)
      if [ "$npos" -eq 0 ]; then
        _connrt_add "$cur" < <(_connrt_ids)
      elif [ "$npos" -eq 1 ]; then
        mapfile -t COMPREPLY < <(compgen -W "$_connrt_methods" -- "${cur^^}")
      fi
      ;;
    exec)
      # any number of connections before --
      _connrt_add "$cur" < <(_connrt_ids)
      ;;
    git-credential)
      [ "$npos" -eq 0 ] && mapfile -t COMPREPLY < <(compgen -W "get store erase" -- "$cur")
      ;;
    token | refresh | revoke | delete | show | credential-process)
      [ "$npos" -eq 0 ] && _connrt_add "$cur" < <(_connrt_ids)
      ;;
    update)
      # a connection, then the connector file to apply to it
      if [ "$npos" -eq 0 ]; then
        _connrt_add "$cur" < <(_connrt_ids)
      elif [ "$npos" -eq 1 ]; then
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <({ compgen -d -- "$cur"; compgen -f -X '!*.lua' -- "$cur"; } | sort -u)
      fi
      ;;
    help)
      [ "$npos" -eq 0 ] && mapfile -t COMPREPLY < <(compgen -W "$_connrt_commands" -- "$cur")
      ;;
  esac
  return 0
}

complete -F _connrt connrt
