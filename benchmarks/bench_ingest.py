import resource, sys, time
from supporting_families.storage import store_root
from supporting_families.sources import load_sources
from supporting_families.ingest import ingest_source
root = store_root(sys.argv[1])
for d in ("curated", "ingest_reports", "quarantine"):
    p = root / d
    if p.exists(): p.fs.rm(p.path, recursive=True)
t0 = time.perf_counter(); rows = 0
for name, spec in load_sources().sources.items():
    t = time.perf_counter()
    reps = ingest_source(root, spec)
    n = sum(r.received or 0 for r in reps); rows += n
    print(f"{name:<24}{n:>10,} rows {time.perf_counter()-t:6.2f} s  accepted {sum(r.accepted for r in reps):,}")
s = time.perf_counter() - t0
print(f"total {rows:,} rows in {s:.2f} s = {rows/s:,.0f} rows/s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:,.0f} MiB")
