"""c2f-data's tools over a store: info, stats and their dashboard, show, label-quality eval, COCO
export, merge, publish (dataset card, Croissant, checksums), verify, synthetic stores and the Dask
view of the masks (`dask_shards`). `cli.main` is the `c2f-data` command; each subcommand wraps one
function here. Reads and writes stores only through `datasets_spec`, the contract.
"""
