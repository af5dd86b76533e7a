#!/usr/bin/env python3
"""Tests of the report's claims (plots/claims.py with plots/claims.json) on small made-up results
folders, of the verdict colours of report.html, of README's generated claims table, and of the
validation's figure (plots/validation.py), reading and report section on made-up `rmai validate`
folders of both layouts (with and without --repeats).

  tests/plots_test.py                   # CTest plots_claims
  tests/plots_test.py --full-run DIR    # CTest readme_full_run: README's claims table is the one the
                                        # full run in DIR gives (exit 77, skipped, without one)
"""
import csv
import json
import math
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
import readme  # noqa: E402

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


METRICS = ["switch_p50_s", "switch_p99_s", "switch_mean_s", "token_p50_s", "replay_s", "expert_switches",
           "page_faults", "user_kernel_transitions", "handler_system_calls"]
# (emul median, sim) per tier and metric; emul_min/emul_max are 0.8x and 1.5x the median.
VALUES = {"dram": [0.0006, 0.0003, 0.0008, 0.003, 0.19, 313, 0, 0, 0],
          "rmai": [0.004, 0.005, 0.014, 0.022, 1.6, 313, 313, 626, 1870]}
SIMS = {"dram": [0.0003, 0.0003, 0.0003, 0.0014, 0.09, 313, 0, 0, 0],
        "rmai": [0.0046, 0.0052, 0.0052, 0.026, 1.62, 313, 313, 626, 0]}
SUMMARY = {"dram": {"layout": "dram", "source": "local memory"},
           "rmai": {"layout": "twin-hugetlb", "source": "memd at 127.0.0.1:1 via tcp (reads of 262144 bytes)"}}


def validate_folder(folder, repeats=None):
    """A made-up `rmai validate --out folder`: with --repeats N the new layout (emul_min, emul_max,
    repeats columns; emul/<tier>/<k>/summary.json), without it the old one (emul/<tier>/summary.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    head = ["tier", "metric", "emul", "sim", "rel_error"] + (["emul_min", "emul_max", "repeats"] if repeats else [])
    with open(folder / "validation.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(head)
        for tier in VALUES:
            for metric, emul, sim in zip(METRICS, VALUES[tier], SIMS[tier]):
                if metric == "handler_system_calls" and not repeats:
                    continue  # the old layout had no such row
                error = (sim - emul) / emul if emul else (0 if sim == 0 else "nan")
                row = [tier, metric, f"{emul:.6g}", f"{sim:.6g}", error if isinstance(error, str) else f"{error:.6g}"]
                spread = (emul * 0.8, emul * 1.5) if metric.endswith("_s") else (emul, emul)
                out.writerow(row + ([f"{spread[0]:.6g}", f"{spread[1]:.6g}", repeats] if repeats else []))
    for tier, emul in SUMMARY.items():
        for where in ([folder / "emul" / tier / str(k) for k in range(1, repeats + 1)] if repeats
                      else [folder / "emul" / tier]):
            where.mkdir(parents=True, exist_ok=True)
            (where / "summary.json").write_text(json.dumps({"schema": 1, "mode": "emul", "tier": tier, "emul": emul}))
    return folder


def run(*command):
    return subprocess.run([sys.executable, *map(str, command)], capture_output=True, text=True)


class Validation(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="rmai-plots-test-")
        self.dir = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def assertPng(self, path):
        self.assertTrue(path.is_file(), path)
        data = path.read_bytes()
        self.assertGreater(len(data), 1000, path)
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n", path)

    def test_the_new_layout_reads_the_spread_and_repeats(self):
        got = c.validation(validate_folder(self.dir / "v", repeats=3))
        self.assertEqual(list(got), ["dram", "rmai"])
        p50 = got["rmai"]["switch_p50_s"]
        self.assertEqual((p50["emul"], p50["emul_min"], p50["emul_max"], p50["repeats"]), (0.004, 0.0032, 0.006, 3))
        self.assertEqual(got["rmai"]["repeats"], 3)
        self.assertEqual(got["rmai"]["layout"], "twin-hugetlb, tcp")  # from emul/rmai/1/summary.json
        self.assertEqual(got["rmai"]["handler_system_calls"]["emul"], 1870)
        self.assertEqual(got["rmai"]["handler_system_calls"]["sim"], 0)

    def test_the_old_layout_reads_as_one_run(self):
        got = c.validation(validate_folder(self.dir / "v"))
        p50 = got["rmai"]["switch_p50_s"]
        self.assertEqual((p50["emul_min"], p50["emul_max"], p50["repeats"]), (0.004, 0.004, 1))
        self.assertEqual(got["rmai"]["repeats"], 1)
        self.assertEqual(got["rmai"]["layout"], "twin-hugetlb, tcp")  # from emul/rmai/summary.json
        self.assertNotIn("handler_system_calls", got["rmai"])
        self.assertIsNone(c.validation(self.dir / "nothing"))

    def test_nan_is_a_value(self):
        folder = validate_folder(self.dir / "v", repeats=2)
        text = (folder / "validation.csv").read_text().replace("dram,page_faults,0,0,0,0,0,2",
                                                               "dram,page_faults,nan,0,nan,nan,nan,2")
        (folder / "validation.csv").write_text(text)
        self.assertTrue(math.isnan(c.validation(folder)["dram"]["page_faults"]["emul"]))
        done = run(ROOT / "plots" / "validation.py", folder)
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_the_figure_is_drawn_for_both_layouts(self):
        for repeats in (3, None):
            folder = validate_folder(self.dir / f"v{repeats}", repeats=repeats)
            done = run(ROOT / "plots" / "validation.py", folder, self.dir / f"fig{repeats}")
            self.assertEqual(done.returncode, 0, done.stderr)
            self.assertPng(self.dir / f"fig{repeats}" / "validation.png")
        done = run(ROOT / "plots" / "validation.py", self.dir / "v3")  # without FIG_DIR: into the folder
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertPng(self.dir / "v3" / "validation.png")

    def test_a_missing_or_malformed_csv_exits_2_naming_the_file(self):
        good = (validate_folder(self.dir / "good", repeats=3) / "validation.csv").read_text()
        head = good.split("\n", 1)[0]
        cases = {"missing": None, "empty": "", "no_sim": good.replace(",sim,", ",simulated,"),
                 "half_spread": good.replace(",repeats", ",runs"), "not_a_number": good.replace("0.0006,", "fast,", 1),
                 "no_repeats": good.replace(",3\n", ",0\n", 1), "inf_repeats": good.replace(",3\n", ",inf\n", 1),
                 "short_row": head + "\nrmai,switch_p50_s,0.004\n",
                 "header_only": head + "\n"}
        for name, text in cases.items():
            folder = self.dir / name
            folder.mkdir()
            if text is None:
                continue
            (folder / "validation.csv").write_text(text)
            with self.assertRaises(ValueError, msg=name) as got:
                c.validation(folder)
            self.assertIn(str(folder / "validation.csv"), str(got.exception), name)
        for name in ("missing", "not_a_number"):  # the script: exit 2, the file named, nothing drawn
            folder = self.dir / name
            done = run(ROOT / "plots" / "validation.py", folder)
            self.assertEqual(done.returncode, 2, f"{name}: {done.stderr}")
            self.assertIn(str(folder / "validation.csv"), done.stderr, name)
            self.assertFalse((folder / "validation.png").exists(), name)

    def test_the_report_states_the_repeats_and_embeds_the_figure(self):
        validate_folder(self.dir / "validate", repeats=3)
        done = run(ROOT / "plots" / "report.py", self.dir)
        self.assertEqual(done.returncode, 0, done.stderr)
        text = (self.dir / "report.md").read_text()
        section = text[text.index("## Measured on this machine"):text.index("## Figures")]
        self.assertIn("ran each tier 3 times", section)
        self.assertIn("median", section)
        self.assertNotIn("One run", section)
        self.assertIn("emul p50 range (ms)", section)
        self.assertIn("| rmai | twin-hugetlb, tcp | 4 | 3.2-6 | 4.6 | +15% |", section)
        self.assertIn("| 2 / 2 | 5.974 |", section)  # transitions per switch emul / sim, handler system calls
        self.assertIn("](validate/validation.png)", section)  # relative to report.md, in RESULTS
        self.assertPng(self.dir / "validate" / "validation.png")  # drawn by the report
        page = (self.dir / "report.html").read_text()
        section = page[page.index("<h2>Measured on this machine</h2>"):page.index("<h2>Figures</h2>")]
        self.assertIn("src='data:image/png;base64,", section)
        record = json.loads((self.dir / "report.json").read_text())["this_machine"]
        self.assertEqual(record["repeats"], 3)
        rmai = next(t for t in record["tiers"] if t["tier"] == "rmai")
        self.assertEqual((rmai["emul_p50_min_s"], rmai["emul_p50_max_s"], rmai["repeats"]), (0.0032, 0.006, 3))
        self.assertAlmostEqual(rmai["handler_system_calls_per_switch"], 1870 / 313)
        # README's emulator table: this run's repeats and an old-layout run beside it.
        table = readme.emulator_table({"this_machine": record}, [validate_folder(self.dir / "old")])
        self.assertIn("(emul: the median of 3 repeats)", table)
        self.assertIn("| rmai (twin-hugetlb, tcp) | 4 ms (3.2-6 ms over 2 runs, 4 repeats) | 4.6 ms | 1 |", table)

    def test_the_report_of_an_old_folder_says_one_run(self):
        validate_folder(self.dir / "validate")
        done = run(ROOT / "plots" / "report.py", self.dir)
        self.assertEqual(done.returncode, 0, done.stderr)
        text = (self.dir / "report.md").read_text()
        section = text[text.index("## Measured on this machine"):text.index("## Figures")]
        self.assertIn("ran each tier once", section)
        self.assertIn("| rmai | twin-hugetlb, tcp | 4 | - | 4.6 | +15% |", section)
        self.assertIn("](validate/validation.png)", section)
        record = json.loads((self.dir / "report.json").read_text())["this_machine"]
        table = readme.emulator_table({"this_machine": record}, [])
        self.assertNotIn("median of", table)
        self.assertIn("| rmai (twin-hugetlb, tcp) | 4 ms | 4.6 ms | 1 |", table)  # one run: no range

    def test_the_report_names_a_malformed_csv(self):
        (self.dir / "validate").mkdir()
        (self.dir / "validate" / "validation.csv").write_text("tier,metric\n")
        done = run(ROOT / "plots" / "report.py", self.dir)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"Not read: {self.dir / 'validate' / 'validation.csv'}: no column",
                      (self.dir / "report.md").read_text())


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
