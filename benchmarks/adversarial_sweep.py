"""Paired PGD-AT sweep over the MSVP lambda on CPU, one resumable unit per (lambda, seed).

Paired: every unit of a seed uses the same training subset, held-out set, test
sets, augmentation stream, initialization seed and schedule; only the MSVP
lambda differs (lambda = 0 is the vanilla ViT with the same weights).

Each (lambda, seed) unit lives in ``<out>/lambda=<l>_seed=<s>/`` and moves through
stages, each saved before the next starts (kill it at any point and rerun the
same command to continue):

1. ``train``: PGD-AT, one checkpoint (model + optimizer + seed state,
   ``checkpoint.weights.h5``) and one ``state.json`` update per epoch, with the
   per-epoch clean and PGD-10 accuracy on a held-out class-balanced subset of
   the training split (disjoint from the training images) to show when robust
   accuracy stops rising.
2. ``lipschitz``: local Lipschitz estimates (whole model and every attention
   layer, with the bound from docs/theory.md) on class-balanced test images
   (`specformer_keras.diagnostics.lipschitz_report`).
3. ``blocks``: the same estimate for every sub-layer of every encoder block
   (`specformer_keras.diagnostics.block_lipschitz_report`), at the same images.
4. ``eval``: clean, PGD-20 and CW-20 at eps 8/255 on ``--test_size``
   class-balanced test images (`evaluate_robustness`, the evaluation suite's
   attacks, unchanged).
5. ``autoattack``: AutoAttack (standard) on ``--autoattack_size`` class-balanced
   test images, in balanced chunks of ``--autoattack_chunk`` saved one by one.

``result.json`` is written (atomically) when all stages are done. Units run
sequentially, one process at a time (a lock refuses a second process).

Every unit records the git commit of the code it runs (``state["code"]``) and a
resume with other code is refused, so the units of a pairing share one version
of the library. ``--record=DIR`` also copies each finished unit's result
(everything but its checkpoint) to ``DIR/lambda=<l>_seed=<s>.json``; a unit in
the record counts as finished, and the summary reads the record together with
``--out``. The record is small and lives in the repository
(``benchmarks/results/at_sweep``), so finished units outlive the machine that
ran them; checkpoints of a unit still training do not. Run the sweep from a
worktree of one fixed commit so that a later session continues with the same
code (``git worktree add ../sweep-code <commit>``).

Pilot (chooses the non-zero lambdas; no robust accuracy is used for the choice):

    KERAS_BACKEND=jax nice -n 19 python benchmarks/adversarial_sweep.py \
        --out=runs/at_pilot --lambdas=0,1e-1,1e-2,1e-3 --seeds=0 --epochs=3 \
        --stages=train,lipschitz

Sweep (resume = the same command):

    KERAS_BACKEND=jax nice -n 19 python benchmarks/adversarial_sweep.py \
        --out=runs/at_sweep --pilot=runs/at_pilot --seeds=0,1,2 --epochs=30 \
        --record=benchmarks/results/at_sweep

What a unit computes (data, trainer, stages) is in `at_sweep_unit.py`; this
script runs the units (resume, lock, code check, record).

Summary (tables with 95% t-intervals over seeds, paired differences, figures;
written by `at_sweep_results.py`):

    python benchmarks/adversarial_sweep.py --out=runs/at_sweep --summarize \
        --record=benchmarks/results/at_sweep
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sweep_common  # noqa: E402
from at_sweep_results import (  # noqa: E402
    load_states,
    record_path,
    summarize,
    unit_dir,
    unit_name,
)
from at_sweep_unit import (  # noqa: E402
    build_data,
    load_model,
    stage_autoattack_chunk,
    stage_blocks,
    stage_eval,
    stage_lipschitz,
    stage_train,
)

STAGES = ("train", "lipschitz", "blocks", "eval", "autoattack")
# Everything that defines a unit's computation; a resume with other values is refused.
DEFAULTS = dict(
    preset="vit_micro_patch4_32",
    train_size=10000,
    heldout_size=500,
    test_size=1000,
    autoattack_size=500,
    autoattack_chunk=100,
    lipschitz_size=100,
    lipschitz_iterations=20,
    epochs=30,
    batch_size=128,
    learning_rate=1e-3,
    weight_decay=0.05,
    warmup_fraction=0.1,
    train_eps=8.0,  # in 1/255
    attack_steps=3,
    eval_eps=8.0,  # in 1/255
    monitor_attack="pgd10",
    data_seed=0,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="runs/at_sweep")
    parser.add_argument("--lambdas", default="0,1e-2,1e-1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--archive", default=sweep_common.DEFAULT_ARCHIVE)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--summarize", action="store_true", help="only summarize")
    parser.add_argument("--assets", default=None, help="also copy figures here")
    parser.add_argument(
        "--record", default=None,
        help="copy each finished unit's result here (a folder kept in the repository)",
    )  # fmt: skip
    parser.add_argument(
        "--pilot", default=None,
        help="take the lambdas from this finished pilot (rule in PILOT_* constants)",
    )  # fmt: skip
    parser.add_argument(
        "--max_epochs_per_run", type=int, default=None,
        help="stop after this many new epochs (resume later with the same command)",
    )  # fmt: skip
    for key, value in DEFAULTS.items():
        kind = type(value)
        parser.add_argument(f"--{key}", type=kind, default=value)
    args = parser.parse_args(argv)
    try:
        args.lambdas = [float(v) for v in args.lambdas.split(",")]
        args.seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        parser.error(
            "--lambdas and --seeds must be comma-separated numbers. "
            f"Received: --lambdas={args.lambdas} --seeds={args.seeds}"
        )
    args.stages = [s for s in args.stages.split(",") if s]
    unknown = [s for s in args.stages if s not in STAGES]
    if unknown:
        parser.error(f"--stages must be among {STAGES}. Received: --stages={unknown}")
    if any(lam < 0 for lam in args.lambdas):
        parser.error(f"--lambdas must be >= 0. Received: --lambdas={args.lambdas}")
    if args.autoattack_size % args.autoattack_chunk:
        parser.error(
            "--autoattack_size must be a multiple of --autoattack_chunk. Received: "
            f"--autoattack_size={args.autoattack_size} "
            f"--autoattack_chunk={args.autoattack_chunk}"
        )
    return args


# The pilot's rule (fixed before the pilot ran; it uses no robust accuracy): keep the
# two largest non-zero lambdas that lower the mean largest singular value by at least
# PILOT_MIN_SIGMA_DROP relative to lambda 0 and cost at most PILOT_MAX_CLEAN_COST of
# held-out clean accuracy after the pilot's last epoch. If fewer than two qualify, fill
# with the largest remaining lambdas within the clean-accuracy cost, then the smallest.
PILOT_MIN_SIGMA_DROP = 0.05
PILOT_MAX_CLEAN_COST = 0.05


def choose_lambdas(pilot_dir):
    """``([0.0, lambda_a, lambda_b], rationale rows)`` from a finished pilot."""
    states = load_states(pilot_dir)
    unfinished = [
        s["config"]["penalty"]
        for s in states
        if s.get("epochs_done", 0) < s["config"]["epochs"]
    ]
    by_lambda = {
        s["config"]["penalty"]: s["epochs"][-1] for s in states if s.get("epochs")
    }
    if unfinished or 0.0 not in by_lambda or len(by_lambda) < 3:
        raise SystemExit(
            f"The pilot in {pilot_dir} is not finished (lambdas still training: "
            f"{unfinished}; finished: {sorted(by_lambda)}). Resume the pilot first."
        )
    base = by_lambda[0.0]
    rows = []
    for lam in sorted((lam for lam in by_lambda if lam > 0), reverse=True):
        last = by_lambda[lam]
        drop = 1.0 - last["mean_sigma_max"] / base["mean_sigma_max"]
        cost = base["heldout_clean"] - last["heldout_clean"]
        ok = drop >= PILOT_MIN_SIGMA_DROP and cost <= PILOT_MAX_CLEAN_COST
        rows.append(
            {"lambda": lam, "sigma_drop": drop, "clean_cost": cost, "qualifies": ok}
        )
    chosen = [r["lambda"] for r in rows if r["qualifies"]][:2]
    for r in rows:
        if (
            len(chosen) < 2
            and r["lambda"] not in chosen
            and r["clean_cost"] <= PILOT_MAX_CLEAN_COST
        ):
            chosen.append(r["lambda"])
    for r in reversed(rows):
        if len(chosen) < 2 and r["lambda"] not in chosen:
            chosen.append(r["lambda"])
    return [0.0] + sorted(chosen), rows


def unit_config(args, penalty, seed):
    config = {key: getattr(args, key) for key in DEFAULTS}
    config.update(penalty=penalty, seed=seed)
    return config


def code_version(path=None):
    """``{"commit", "dirty"}`` of the git checkout holding ``path`` (this script).

    ``dirty`` is True when tracked files differ from the commit, so a unit run from
    an edited tree is never taken for one run from the commit itself. None outside git.
    """
    import subprocess

    where = os.path.dirname(os.path.abspath(path or __file__))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
            check=True,
        ).stdout.strip()  # fmt: skip
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "dirty": bool(changes)}


def recorded_result(state):
    """What ``--record`` keeps of a finished unit: all but the resume-only fields."""
    return {k: v for k, v in state.items() if k != "seed_states"}


def run_unit(args, penalty, seed, data_cache):
    from specformer_keras.utils.io import atomic_write_json, read_json

    directory = unit_dir(args.out, penalty, seed)
    result_path = os.path.join(directory, "result.json")
    config = unit_config(args, penalty, seed)
    recorded = args.record and record_path(args.record, penalty, seed)
    if recorded and os.path.exists(recorded):
        refuse_other_settings(read_json(recorded)["config"], config, recorded)
        print(f"skip {unit_name(penalty, seed)} (recorded in {args.record})")
        return
    if os.path.exists(result_path):
        print(f"skip {directory} (finished)")
        if args.record:
            save_record(args.record, read_json(result_path))
        return
    code = code_version()
    with sweep_common.UnitLock(directory):
        state_path = os.path.join(directory, "state.json")
        if os.path.exists(state_path):
            state = read_json(state_path, hint="Delete the unit folder to restart it.")
            refuse_other_settings(state["config"], config, directory)
            if state.get("code") != code:
                raise SystemExit(
                    f"{directory} was started with other code (saved: "
                    f"{state.get('code')}, now: {code}). Resume from that commit "
                    "(git worktree add <dir> <commit>) so the pairing holds, or use "
                    "another --out."
                )
        else:
            state = {
                "config": config,
                "code": code,
                "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            }
        if "data" not in data_cache:
            data_cache["data"] = build_data(config, args.archive)
        data = data_cache["data"]
        print(
            f"=== PGD-AT lambda={penalty:g} seed={seed} ({directory}) ===", flush=True
        )

        def save():
            import keras

            state["backend"] = keras.config.backend()
            atomic_write_json(state_path, state)

        model = None
        if "train" in args.stages and not state.get("trained"):
            model = stage_train(config, state, data, directory, args.max_epochs_per_run)
            if model is None:
                print(f"  paused after epoch {state['epochs_done']}", flush=True)
                return "paused"
            state["trained"] = True
            save()
        if not state.get("trained"):
            print("  not trained yet (stage train not selected)")
            return
        model = model or load_model(directory)
        for stage, run in (("lipschitz", stage_lipschitz), ("blocks", stage_blocks)):
            if stage in args.stages and stage not in state:
                start = time.time()
                state[stage] = run(config, data, model)
                state[stage]["seconds"] = time.time() - start
                save()
                print(f"  {stage} done in {time.time() - start:.0f}s", flush=True)
        if "eval" in args.stages and "eval" not in state:
            state["eval"] = stage_eval(config, data, model)
            save()
            print(f"  eval: {state['eval']['accuracy']}", flush=True)
        if "autoattack" in args.stages:
            chunks = state.setdefault("autoattack_chunks", [])
            for chunk in range(
                len(chunks), config["autoattack_size"] // config["autoattack_chunk"]
            ):
                chunks.append(stage_autoattack_chunk(config, data, model, chunk))
                save()
                print(
                    f"  autoattack chunk {chunk}: {chunks[-1]['accuracy']}", flush=True
                )
        if (
            all(s in state for s in ("lipschitz", "blocks", "eval"))
            and len(state.get("autoattack_chunks", [])) * config["autoattack_chunk"]
            == config["autoattack_size"]
        ):
            state["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            atomic_write_json(result_path, state)
            print(f"  finished: {result_path}", flush=True)
            if args.record:
                save_record(args.record, state)


def refuse_other_settings(saved, config, where):
    """SystemExit naming every setting of a saved unit that differs from ``config``."""
    if saved != config:
        changed = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
        raise SystemExit(
            f"{where} holds a unit with other settings (saved, now): {changed}. "
            "Use another --out/--record or the saved settings."
        )


def save_record(record, state):
    from specformer_keras.utils.io import atomic_write_json

    config = state["config"]
    path = record_path(record, config["penalty"], config["seed"])
    os.makedirs(record, exist_ok=True)
    atomic_write_json(path, recorded_result(state))
    print(f"  recorded: {path}", flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.pilot and not args.summarize:
        from specformer_keras.utils.io import atomic_write_json, read_json

        args.lambdas, rows = choose_lambdas(args.pilot)
        for row in rows:
            print(
                f"pilot lambda={row['lambda']:g}: sigma -{100 * row['sigma_drop']:.1f}%, "
                f"clean cost {100 * row['clean_cost']:.1f} pts, qualifies={row['qualifies']}"
            )
        print(f"lambdas chosen from the pilot: {args.lambdas}", flush=True)
        choice = os.path.join(args.out, "lambdas_from_pilot.json")
        if os.path.exists(choice) and read_json(choice)["lambdas"] != args.lambdas:
            raise SystemExit(
                f"{choice} records other lambdas than the pilot gives now."
            )
        atomic_write_json(
            choice, {"pilot": args.pilot, "lambdas": args.lambdas, "rows": rows}
        )
    if not args.summarize:
        data_cache = {}
        for seed in args.seeds:
            for penalty in args.lambdas:
                if run_unit(args, penalty, seed, data_cache) == "paused":
                    break
            else:
                continue
            break
    summarize(args.out, args.assets, args.record)


if __name__ == "__main__":
    main()
