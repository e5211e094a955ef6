# Sourced by scripts/demo.sh: `demo_out DIR` makes DIR the demo's output folder, deleting only what
# an earlier demo made. DIR may be missing or empty (created), or a folder a demo made, which holds
# the marker file DEMO_MARKER (emptied). Any other path is refused: one line on stderr, status 2.
DEMO_MARKER=.c2fmae-demo

demo_out() {
    local dir=$1
    if [[ -e $dir && ! -d $dir ]]; then
        echo "demo.sh: error: $dir exists and is not a folder; give a new or empty folder" >&2
        return 2
    fi
    local entries=""
    if [[ -d $dir ]]; then
        entries=$(ls -A -- "$dir") || return 2
    fi
    if [[ -n $entries ]]; then
        if [[ ! -f $dir/$DEMO_MARKER ]]; then
            echo "demo.sh: error: $dir is not empty and no demo made it (no $DEMO_MARKER in it): nothing" \
                "deleted; give a new or empty folder" >&2
            return 2
        fi
        find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + || return
    fi
    mkdir -p -- "$dir" && : >"$dir/$DEMO_MARKER"
}
