#!/usr/bin/env bash
# Check that the C lines changed since a base commit are formatted as
# .clang-format says (git clang-format: changed lines only, so hand-wrapped
# code elsewhere stays as it is). Prints the diff that would fix them and
# fails when there is one.
#
#   scripts/check-format.sh [BASE]
#
# BASE defaults to the merge base of HEAD with main (origin/main, else
# main); on main itself, to the previous commit. Uncommitted changes are
# checked too. To fix: git clang-format BASE (then review and commit).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v git-clang-format >/dev/null; then
  echo "check-format: git clang-format is missing (Debian package clang-format; make deps)" >&2
  exit 2
fi

base=${1:-}
if [[ -z $base ]]; then
  for ref in origin/main main; do
    if git rev-parse -q --verify "$ref^{commit}" >/dev/null; then
      base=$(git merge-base HEAD "$ref")
      break
    fi
  done
  if [[ -z $base || $base == "$(git rev-parse HEAD)" ]]; then
    if ! base=$(git rev-parse -q --verify 'HEAD~1^{commit}'); then
      echo "check-format: no previous commit to compare with (a shallow clone?); nothing checked" >&2
      exit 0
    fi
  fi
fi

# A file moved since the base is compared with its old self, not checked as
# new: the comparison is against the base with those moves applied (a commit
# of its own, on no branch), so only the lines a change edits count.
since=$base
mapfile -t moves < <(git diff -M --name-status --diff-filter=R "$base" -- | cut -f2,3)
if ((${#moves[@]})); then
  index=$(mktemp)
  trap 'rm -f "$index"' EXIT
  GIT_INDEX_FILE=$index git read-tree "$base"
  for m in "${moves[@]}"; do
    old=${m%%$'\t'*} new=${m#*$'\t'}
    read -r mode _ blob _ < <(git ls-tree "$base" -- "$old")
    GIT_INDEX_FILE=$index git update-index --force-remove -- "$old"
    GIT_INDEX_FILE=$index git update-index --add --cacheinfo "$mode,$blob,$new"
  done
  base=$(git commit-tree "$(GIT_INDEX_FILE=$index git write-tree)" -p "$base" \
    -m "check-format: $(git rev-parse --short "$base") with the files moved since at their new paths")
fi

out=$(git clang-format --quiet --diff --extensions c,h "$base" --)
if [[ -n $out && $out != "no modified files to format" && $out != "clang-format did not modify any files" ]]; then
  printf '%s\n' "$out"
  echo "check-format: lines changed since $(git rev-parse --short "$since") are not formatted as .clang-format says;" \
    "fix with: git clang-format $(git rev-parse --short "$base")" >&2
  exit 1
fi
echo "check-format: lines changed since $(git rev-parse --short "$since") are formatted"
