"""`mva eval annotate3d ...`: parse the combinations, run them, print and save the JSON."""
import json
import sys


def run_annotate3d_command(args):
    """Run every combination of `args.tools` on the case; exit code 2 with a message on bad input."""
    from MVABridgeLib.errors import BridgeError
    from MVAEvaluationLib.annotate3d import evaluate_annotate3d
    from MVAEvaluationLib.evaluation import EvaluationError
    combinations = [name.strip() for name in args.tools.split(",") if name.strip()]
    if not args.volume or not args.truth:
        print("mva eval: Both --volume and --truth are needed", file=sys.stderr)
        return 2
    try:
        results = evaluate_annotate3d(args.volume, args.truth, args.label, combinations, args.budget,
                                      seed=args.seed or 0, model=args.model, checkpoint=args.checkpoint)
    except (EvaluationError, BridgeError) as error:
        print(f"mva eval: {error}", file=sys.stderr)
        return 2
    text = json.dumps(results[0] if len(results) == 1 else results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as stream:
            stream.write(text + "\n")
    return 0
