// `virtq completion zsh`: the same model as the bash script, for zsh's completion system:
// commands and options offered with their descriptions, values as in bash (literal choices,
// files, or names from `virtq [-c URI] __complete KIND [CONTEXT]`).
import type { CompletionCommand, CompletionModel, CompletionOption } from './model.js';

/** Shell text written with `$%{` where the shell has `${`. */
const shellText = (s: string): string => s.replaceAll('$%{', '${');

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
// zsh's `compadd -d` shows these; a colon would end the name in _describe, so none is used.
const described = (name: string, description: string): string => `${name.padEnd(22)} -- ${description}`;

function tables(model: CompletionModel): string[] {
  const commands = [...model.top, ...model.admin];
  const assoc = (name: string, entries: ReadonlyArray<readonly [string, string]>): string[] => [
    `typeset -gA ${name}`, `${name}=(`, ...entries.map(([k, v]) => `  ${q(k)} ${q(v)}`), ')',
  ];
  const list = (name: string, items: readonly string[]): string[] => [`typeset -ga ${name}`, `${name}=(`, ...items.map((i) => `  ${q(i)}`), ')'];
  const optionLines = (opts: readonly CompletionOption[]): string => opts.flatMap((o) => o.names.map((n) => described(n, o.description))).join('\n');
  const valued = commands.flatMap((c) => c.options.flatMap((o) => (o.value === undefined ? [] : o.names.map((n) => [`${c.key} ${n}`, o.value as string] as const))));
  const names = (cs: readonly CompletionCommand[]): string[] => cs.map((c) => c.name);
  const descs = (cs: readonly CompletionCommand[]): string[] => cs.map((c) => described(c.name, c.description));
  return [
    ...list('_virtq_top', names(model.top)), ...list('_virtq_top_desc', descs(model.top)),
    ...list('_virtq_admin', names(model.admin)), ...list('_virtq_admin_desc', descs(model.admin)),
    `_virtq_globals=${q(optionLines(model.globals))}`,
    ...assoc('_virtq_opts', commands.map((c) => [c.key, optionLines(c.options)] as const)),
    ...assoc('_virtq_optval', valued),
    ...assoc('_virtq_args', commands.map((c) => [c.key, c.args.join(' ')] as const)),
  ];
}

// Written with $%{ for the shell's ${ (a template literal would take ${ as its own); see shellText.
const FUNCTIONS = shellText(String.raw`
# Completes the current word as a value of kind $1 (see cli/completion/model.ts).
_virtq_value() {
  local alt ref
  local -a ctx found
  for alt in $%{(s:|:)1}; do
    case $alt in
      none) return 1 ;;
      file) _files; return ;;
      command) compadd -d _virtq_top_desc -l -- $_virtq_top; return ;;
      '='*) compadd -- $%{(s:,:)alt#=}; return ;;
    esac
    ctx=()
    if [[ $alt == *:* ]]; then
      for ref in $%{(s:,:)alt#*:}; do
        if [[ $ref == @* ]]; then ref=$%{_virtq_pos[$%{ref#@}]}; else ref=$%{_virtq_given[$ref]}; fi
        if [[ -n $ref ]]; then ctx=($ref); break; fi
      done
      (( $%{#ctx} )) || continue
    fi
    found=($%{(f)"$($_virtq_bin $%{_virtq_uri:+-c} $%{_virtq_uri:+$_virtq_uri} __complete $%{alt%%:*} $ctx 2>/dev/null)"})
    compadd -- $found; return
  done
}

_virtq() {
  local w k key= cmd= sub= _virtq_uri= _virtq_bin=$%{words[1]}
  local -a _virtq_pos
  local -A _virtq_given
  local -i i=2
  local cur=$%{words[CURRENT]} prev=$%{words[CURRENT-1]}
  while (( i < CURRENT )); do
    w=$%{words[i]}
    case $w in
      -c|--connect) _virtq_uri=$%{words[i+1]}; (( i += 2 )); continue ;;
      --connect=*) _virtq_uri=$%{w#--connect=}; (( i++ )); continue ;;
    esac
    if [[ -z $cmd ]]; then
      [[ $w != -* ]] && cmd=$w && key=$w
    elif [[ $cmd == admin && -z $sub ]]; then
      [[ $w != -* ]] && sub=$w && key="admin $w"
    elif [[ $w == -*=* ]]; then
      _virtq_given[$%{w%%=*}]=$%{w#*=}
    elif [[ $w == -* ]]; then
      k="$key $w"
      if (( $%{+_virtq_optval[$k]} )); then _virtq_given[$w]=$%{words[i+1]}; (( i += 2 )); continue; fi
    else
      _virtq_pos+=($w)
    fi
    (( i++ ))
  done
  case $prev in -c|--connect) return 1 ;; esac
  k="$key $prev"
  if [[ -n $key && $prev == -* && $cur != -* ]] && (( $%{+_virtq_optval[$k]} )); then
    _virtq_value $%{_virtq_optval[$k]}; return
  fi
  local -a lines names
  if [[ $cur == -* ]]; then
    lines=($%{(f)_virtq_opts[$key]} $%{(f)_virtq_globals})
    names=($%{lines%% *})
    compadd -d lines -l -- $names; return
  fi
  if [[ -z $cmd ]]; then compadd -d _virtq_top_desc -l -- $_virtq_top; return; fi
  if [[ $cmd == admin && -z $sub ]]; then compadd -d _virtq_admin_desc -l -- $_virtq_admin; return; fi
  local -a kinds=($%{=_virtq_args[$key]})
  local kind=$%{kinds[$(( $%{#_virtq_pos} + 1 ))]}
  [[ -n $kind ]] && _virtq_value $kind
}

# Sourced: register. Autoloaded from $fpath: this file is _virtq's body, so complete now.
if [[ $%{funcstack[1]} == _virtq ]]; then _virtq "$@"; else (( $+functions[compdef] )) && compdef _virtq virtq; fi
`);

/** The zsh completion script for `model`. */
export function zshCompletion(model: CompletionModel): string {
  return [
    '#compdef virtq',
    '# zsh completion for virtq. Generated by `virtq completion zsh` from its command tree; load it after',
    '# compinit with  source <(virtq completion zsh)  or save it as _virtq in a directory of $fpath.',
    ...tables(model),
    FUNCTIONS,
  ].join('\n');
}
