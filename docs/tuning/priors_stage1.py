"""Stage 1 of ``cmhbench priors`` alone, for a measurement: each method's grid and prior AUCs.

    python docs/tuning/priors_stage1.py DATASET FEATURES METHOD[,METHOD...]   # data folder: $CMHBENCH_DATA

Prints one JSON line per method: the method's own values and their AUC, the top points, and
the process CPU seconds.  Nothing is chosen or written; ``cmhbench priors`` runs both stages.
"""

import json
import sys
import time

from cmhbench.harness import priors
from cmhbench.datasets import resolve
from cmhbench.methods import registry

dataset, features, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
source = resolve(dataset, None, cache_dir=None)
data = priors.validation_rows(source, source.default_protocol, 0, features)
print(json.dumps({"dataset": dataset, "features": features, "rows": data.n,
                  "pairs": len(data.first) * len(data.second)}))
for method in methods:
    start = time.process_time()
    resolved = registry.resolve_params(method, dataset=source.name)
    points, top = priors.stage1(method, resolved, data, seed=0, device="cpu", report=lambda line: None)
    print(json.dumps({"method": method, "own": points[0].values if points[0].start else None,
                      "own_auc": round(points[0].auc, 4) if points[0].start else None,
                      "top": [[p.values, round(p.auc, 4)] for p in top],
                      "cpu_s": round(time.process_time() - start, 1)}), flush=True)
