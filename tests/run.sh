#!/bin/sh
# Run each test program given, report each, and fail if any failed.
status=0
passed=0
failed=""
for t in "$@"; do
    echo "== $t"
    if "$t"; then
        passed=$((passed + 1))
    else
        status=1
        failed="$failed $(basename "$t")"
    fi
done
echo "== $passed of $# test programs passed${failed:+; failed:$failed}"
exit $status
