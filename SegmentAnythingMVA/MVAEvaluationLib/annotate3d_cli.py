"""`mva eval annotate3d ...`: parse the combinations, run them, print and save the JSON."""
import json
import sys


def annotate3d_input_problem(args, combinations):
    """The message for unusable `mva eval annotate3d` arguments (checked before any case is loaded), or None."""
    from MVACommandLineLib.arguments import check_eval_inputs
    from MVAEvaluationLib.annotate3d_tools import COMBINATIONS
    if not args.volume or not args.truth:
        return "Both --volume and --truth are needed"
    if not combinations:
        return f"--tools names no tool combination; choose from {', '.join(COMBINATIONS)}"
    unknown = [name for name in combinations if name not in COMBINATIONS]
    if unknown:
        return (f"Unknown tool combination {', '.join(map(repr, unknown))}; choose from "
                f"{', '.join(COMBINATIONS)}")
    if args.budget < 2:
        return f"--budget: a 3D session needs at least 2 interactions (a press and its Apply), got {args.budget}"
    if any(name.startswith("sam") for name in combinations):
        from SegmentAnythingLib.engine_factory import MODEL_NAMES
        if args.model not in MODEL_NAMES:
            return f"Unknown model {args.model!r}; choose one of {', '.join(MODEL_NAMES)}"
    return check_eval_inputs(args)


def run_annotate3d_command(args):
    """Run every combination of `args.tools` on the case; exit code 2 with a message on bad input."""
    from MVABridgeLib.errors import BridgeError
    from MVAEvaluationLib.annotate3d import evaluate_annotate3d
    from MVAEvaluationLib.evaluation import EvaluationError
    from SegmentAnythingLib.algorithms.sam_errors import CheckpointError, SamInputError
    from SmartBrushLib.algorithms.errors import SmartBrushInputError
    from SmartPropagationLib.algorithms.propagation_errors import PropagationInputError
    from SmartRegionsLib.algorithms.region_errors import RegionInputError
    combinations = [name.strip() for name in (args.tools or "").split(",") if name.strip()]
    problem = annotate3d_input_problem(args, combinations)
    if problem:
        print(f"mva eval: {problem}", file=sys.stderr)
        return 2
    try:
        results = evaluate_annotate3d(args.volume, args.truth, args.label, combinations, args.budget,
                                      seed=args.seed or 0, model=args.model, checkpoint=args.checkpoint)
    except (EvaluationError, BridgeError, CheckpointError, SamInputError, SmartBrushInputError,
            PropagationInputError, RegionInputError) as error:
        # input the tools cannot work on (a volume smaller than one region, a checkpoint that is no model)
        print(f"mva eval: {error}", file=sys.stderr)
        return 2
    text = json.dumps(results[0] if len(results) == 1 else results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as stream:
            stream.write(text + "\n")
    return 0
