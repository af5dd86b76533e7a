#!/usr/bin/env python3
"""Tests of the report's claims (plots/claims.py with plots/claims.json) on small made-up results
folders, of the verdict colours of report.html, and of README's generated claims table.

  tests/plots_test.py                   # CTest plots_claims
  tests/plots_test.py --full-run DIR    # CTest readme_full_run: README's claims table is the one the
                                        # full run in DIR gives (exit 77, skipped, without one)
"""
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plots"))
import common as c  # noqa: E402  (re-executes Debian's python3 when this one lacks matplotlib)
import claims as cl  # noqa: E402

SKIPPED = 77


def write(folder, experiment, rows):
    """RESULTS/<experiment>/results.csv with these rows (dicts), status ok."""
    (folder / experiment).mkdir(parents=True, exist_ok=True)
    keys = ["point", "status", *dict.fromkeys(k for r in rows for k in r)]
    with open(folder / experiment / "results.csv", "w", newline="") as f:
        out = csv.DictWriter(f, keys)
        out.writeheader()
        for i, r in enumerate(rows):
            out.writerow({"point": f"p{i:04d}", "status": "ok", **r})


def verdict(folder, claim):
    got = next(x for x in cl.evaluate(folder) if x["id"] == claim)
    return got["verdict"], got["level"]


def sharing(folder, slow_p50):
    """64 nodes: a shared pool of one copy against private DRAM copies; the pool's p50 at 64 nodes."""
    one = 90e9
    write(folder, "sharing", [
        {"tier": "rmai", "nodes": 1, "pool_bytes": one, "expert_switch_s.p50": 0.03},
        {"tier": "rmai", "nodes": 64, "pool_bytes": one, "expert_switch_s.p50": slow_p50},
        {"tier": "dram", "nodes": 64, "pool_bytes": 64 * one, "expert_switch_s.p50": 0.01}])


class Claims(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rmai-plots-test-")
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_every_claim_has_a_function_and_known_tiers(self):
        ids = [x["id"] for x in cl.DEFINITIONS["claims"]]
        self.assertEqual(sorted(ids), sorted(cl.FUNCTIONS))
        cl.check_tiers()
        for claim in cl.DEFINITIONS["claims"]:
            self.assertNotIn("{", cl.rule(claim), claim["id"])  # every placeholder filled

    def test_an_unknown_tier_names_the_claim_and_role(self):
        claim = cl.DEFINITIONS["claims"][0]
        saved = dict(claim["tiers"])
        claim["tiers"]["disk"] = "floppy"
        try:
            with self.assertRaises(SystemExit) as got:
                cl.check_tiers()
            self.assertIn(f"claim {claim['id']}: tiers.disk: unknown tier 'floppy'", str(got.exception))
        finally:
            claim["tiers"].clear()
            claim["tiers"].update(saved)

    def test_no_results_is_grey(self):
        for x in cl.evaluate(self.dir):
            self.assertEqual((x["verdict"], x["level"]), ("no results", "no-results"), x["id"])

    def test_disk_thresholds(self):
        for ratio, expected in ((10, "holds"), (5, "partly"), (2, "does not hold")):
            write(self.dir, "switch-latency", [
                {"model": "mixtral-8x7b", "tier": "rmai", "expert_switch_s.p50": 0.01},
                {"model": "mixtral-8x7b", "tier": "disk-mmap", "expert_switch_s.p50": 0.01 * ratio}])
            self.assertEqual(verdict(self.dir, "disk")[0], expected, ratio)

    def test_sharing_that_slows_switches_is_mixed_not_green(self):
        sharing(self.dir, 0.9)  # 30x slower at 64 nodes
        self.assertEqual(verdict(self.dir, "sharing"), ("holds for capacity", "partly"))
        sharing(self.dir, 0.033)  # within 1.25x
        self.assertEqual(verdict(self.dir, "sharing"), ("holds", "holds"))

    def test_cxl_holding_only_with_chunks_is_mixed(self):
        rows = [{"model": "mixtral-8x7b", "tier": "rmai", "expert_switch_s.p50": 0.031},
                {"model": "mixtral-8x7b", "tier": "cxl", "expert_switch_s.p50": 0.0147}]
        write(self.dir, "switch-latency", rows)
        self.assertEqual(verdict(self.dir, "cxl"), ("partly", "partly"))  # 2.1x whole experts, no chunks run
        write(self.dir, "region-chunk", [
            {"param.memory.rmai.region_chunk": "8MiB", "param_si.memory.rmai.region_chunk": 8 * 2**20,
             "param.memory.rmai.fault_batch": 512, "tier": "rmai", "expert_switch_s.p50": 0.0174},
            {"param.memory.rmai.region_chunk": "expert", "param_si.memory.rmai.region_chunk": 0,
             "param.memory.rmai.fault_batch": 512, "tier": "cxl", "expert_switch_s.p50": 0.0147}])
        self.assertEqual(verdict(self.dir, "cxl"), ("holds with chunks", "partly"))
        rows[0]["expert_switch_s.p50"] = 0.016  # whole experts within 1.25x
        write(self.dir, "switch-latency", rows)
        self.assertEqual(verdict(self.dir, "cxl"), ("holds", "holds"))

    def test_report_colours_verdicts_by_level(self):
        sharing(self.dir, 0.9)
        subprocess.run([sys.executable, str(ROOT / "plots" / "report.py"), str(self.dir)], check=True,
                       capture_output=True)
        page = (self.dir / "report.html").read_text()
        self.assertIn("<td class='partly'>holds for capacity</td>", page)
        self.assertIn("<td class='no-results'>no results</td>", page)
        record = json.loads((self.dir / "report.json").read_text())
        self.assertEqual([x["id"] for x in record["claims"]], [x["id"] for x in cl.DEFINITIONS["claims"]])
        self.assertIsNone(record["sets"])  # no reproduce.json: not recorded
        # README is written only from a full run on the shipped defaults.
        done = subprocess.run([sys.executable, str(ROOT / "plots" / "readme.py"), str(self.dir), "--check"],
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("README describes a full run", done.stderr)


class Readme(unittest.TestCase):
    def test_the_claims_table_lists_the_claims_of_claims_json(self):
        text = (ROOT / "README.md").read_text()
        block = re.search(r"<!-- BEGIN claims[^>]*-->\n(.*?)<!-- END claims -->", text, re.S)
        self.assertIsNotNone(block, "README.md has no generated claims block")
        rows = [line.split(" | ") for line in block.group(1).splitlines() if line.startswith("| ") and "---" not in line]
        self.assertEqual([r[0][2:] for r in rows[1:]], [x["readme"] for x in cl.DEFINITIONS["claims"]])
        for r in rows[1:]:
            self.assertRegex(r[-1], r"^(holds|partly|does not hold|no results)")
            self.assertRegex(r[1], r"[0-9]", r[0])


def full_run(folder):
    """0 when README's claims table is the one the full run in `folder` gives, 77 without such a run."""
    try:
        record = json.loads((Path(folder) / "report.json").read_text())
    except (OSError, ValueError):
        print(f"skipped: no full run in {folder} (rmai reproduce --out {folder}; or set RMAI_FULL_RESULTS)")
        return SKIPPED
    if record.get("mode") != "full" or record.get("sets") != []:
        print(f"skipped: {folder} is not a full run on the shipped defaults (mode {record.get('mode')}, "
              f"sets {record.get('sets')})")
        return SKIPPED
    return subprocess.run([sys.executable, str(ROOT / "plots" / "readme.py"), str(folder), "--check"]).returncode


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full-run":
        sys.exit(full_run(os.environ.get("RMAI_FULL_RESULTS") or sys.argv[2]))
    unittest.main()
