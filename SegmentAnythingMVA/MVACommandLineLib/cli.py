"""The `mva` command: demo, eval, bench, report, data, serve, project. Thin: parse, build, call the library."""
import argparse
import json
import os
import sys

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")

from MVACommandLineLib.arguments import check_command_paths, check_eval_inputs, int_range  # noqa: E402

EVAL_TOOLS = ("brush", "regions", "sam", "propagate", "interpolate", "growcut", "fillbetween", "copy", "annotate3d")


def build_parser():
    parser = argparse.ArgumentParser(prog="mva", description="SegmentAnythingMVA headless tools")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the smart tools on the bundled MNI T1 and write the results")
    demo.add_argument("--output", default="mva-output", help="output folder (default: %(default)s)")

    evaluate = commands.add_parser("eval", help="score one tool on a labelled volume with a simulated user")
    evaluate.add_argument("tool", help=f"one of: {', '.join(EVAL_TOOLS)}")
    evaluate.add_argument("--volume", required=True, help="image file or DICOM folder")
    evaluate.add_argument("--truth", required=True, help="labelmap on the same grid")
    evaluate.add_argument("--label", type=int_range(1, 2 ** 31 - 1), default=1, help="label value of the structure")
    evaluate.add_argument("--interactions", type=int_range(1, 10000), default=20)
    evaluate.add_argument("--axis", default="axial", choices=("axial", "coronal", "sagittal"))
    evaluate.add_argument("--slice", type=int_range(0), default=None, help="work and score on this slice (2D)")
    evaluate.add_argument("--gap", type=int_range(2, 10000), default=5,
                          help="interpolate: truth kept on every G-th slice (at least 2)")
    evaluate.add_argument("--seed", type=int_range(0, 2 ** 32 - 1), default=None,
                          help="random simulated user with this seed")
    evaluate.add_argument("--model", default="tiny", help="sam: tiny, vit_b, vit_l, vit_h, medsam")
    evaluate.add_argument("--checkpoint", default=None, help="sam: checkpoint file")
    evaluate.add_argument("--input-size", type=encoder_input_size, default=None,
                          help="sam: image encoder input side: a multiple of 16 such as 512, or auto "
                               "(the smallest of 512/768/1024 that holds the slice); default the model's own 1024")
    evaluate.add_argument("--json", default=None, help="also write the result to this file")
    evaluate.add_argument("--strategy", default=None, choices=("registration", "sam2", "copy"),
                          help="propagate: how slices are carried (default registration; sam2 uses --model: tiny, "
                               "sam2.1_tiny, sam2.1_small, sam2.1_base_plus, sam2.1_large or medsam2)")
    evaluate.add_argument("--prompt", default="mask", choices=("mask", "click", "box", "box+click"),
                          help="propagate --strategy sam2: what the start slice is given as, from its truth only: the "
                               "mask (default), one click, the bounding box (noisy with --seed) or both")
    evaluate.add_argument("--tools", default="brush3d", help="annotate3d: comma-separated tool combinations, e.g. "
                          "brush3d,brush+propagate,regions,sam+propagate,paint+fillbetween,growcut3d")
    evaluate.add_argument("--budget", type=int_range(1, 10000), default=30,
                          help="annotate3d: interactions allowed per session")

    report = commands.add_parser("report", help="standard suite for every tool and baseline: table and plots")
    report.add_argument("--output", default="results")
    report.add_argument("--quick", action="store_true", help="small volumes, few interactions (a smoke test)")
    report.add_argument("--parts", nargs="+", default=None,
                        choices=("sessions", "variants", "supervoxels", "session-variants", "slices"),
                        help="run only these parts (default: all, in this order)")
    report.add_argument("--budget", type=int_range(2, 10000), default=None,
                        help="interactions per 3D session (default 30; --quick 8)")

    bench = commands.add_parser("bench", help="speed suite: each tool next to its baseline, p50/p95, memory")
    bench.add_argument("--only", nargs="*", default=None, help="run only these entries")
    bench.add_argument("--quick", action="store_true", help="smaller sizes, no ViT-B encoding")
    bench.add_argument("--json", default=None)
    bench.add_argument("--markdown", default=None, help="also write the table (as in the README) to this file")

    data = commands.add_parser("data", help="export the standard evaluation cases as NIfTI files")
    data.add_argument("--output", default="mva-data")
    data.add_argument("--variants", action="store_true",
                      help="also the 3D suite's cases and their robustness variants (reported families)")

    from MVAWorkflowLib.project_cli import add_project_command
    add_project_command(commands)
    from MVAWebLib.serve import add_serve_command
    add_serve_command(commands)
    from MVAComputeLib.compute_cli import add_compute_commands
    add_compute_commands(commands, encoder_input_size)
    from MVAWebLib.deploy_cli import add_deploy_commands
    add_deploy_commands(commands)
    from MVACommandLineLib.models_cli import add_models_command
    add_models_command(commands)
    return parser


def encoder_input_size(text):
    """--input-size: full, auto or a positive integer."""
    from SegmentAnythingLib.engine_factory import input_size_from_text
    try:
        return input_size_from_text(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def propagation_extra(args):
    """`mva eval propagate`'s --strategy and --prompt as EvalOptions.extra (only what differs from the default)."""
    extra = {"strategy": args.strategy} if args.strategy else {}
    if getattr(args, "prompt", "mask") != "mask":
        extra["prompt"] = args.prompt
    return extra


def run_eval(args):
    if args.tool == "annotate3d":
        from MVAEvaluationLib.annotate3d_cli import run_annotate3d_command
        return run_annotate3d_command(args)
    problem = check_eval_inputs(args)
    if problem:  # before the slow imports: a wrong file costs a second, not the scene and model set-up
        print(f"mva eval: {problem}", file=sys.stderr)
        return 2
    from MVAEvaluationLib.evaluation import EvalOptions, EvaluationError, evaluate
    from MVAEvaluationLib.tool_runners import TOOLS
    options = EvalOptions(tool=args.tool, volume=args.volume, truth=args.truth, label=args.label,
                          interactions=args.interactions, axis=args.axis, slice=args.slice, gap=args.gap,
                          seed=args.seed, model=args.model, checkpoint=args.checkpoint,
                          input_size=args.input_size, extra=propagation_extra(args))
    try:
        result = evaluate(options, TOOLS)
    except EvaluationError as error:
        print(f"mva eval: {error}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as stream:
            stream.write(text + "\n")
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    problem = check_command_paths(args)
    if problem:
        print(f"mva {args.command}: {problem}", file=sys.stderr)
        return 2
    if args.command == "demo":
        from MVACommandLineLib.demo import run_demo
        run_demo(args.output)
    elif args.command == "eval":
        return run_eval(args)
    elif args.command == "report":
        from MVAEvaluationLib.report import PARTS, run_report
        from MVAEvaluationLib.tool_runners import TOOLS
        run_report(args.output, TOOLS, quick=args.quick, parts=args.parts or PARTS, budget=args.budget)
    elif args.command == "bench":
        from MVAEvaluationLib.bench import run_bench
        from MVAEvaluationLib.bench import markdown_table
        rows = run_bench(args.only, args.quick)
        if args.json:
            with open(args.json, "w") as stream:
                json.dump(rows, stream, indent=1)
        if args.markdown:
            with open(args.markdown, "w") as stream:
                stream.write(markdown_table(rows))
    elif args.command == "serve":
        from MVAWebLib.serve import run_serve
        return run_serve(args)
    elif args.command in ("launcher", "gateway", "nginx-site"):
        from MVAWebLib.deploy_cli import run_deploy_command
        return run_deploy_command(args)
    elif args.command in ("embed", "inference-service"):
        from MVAComputeLib.compute_cli import run_compute_command
        return run_compute_command(args)
    elif args.command == "models":
        from MVACommandLineLib.models_cli import run_models_command
        return run_models_command(args)
    elif args.command == "project":
        from MVAWorkflowLib.project_cli import run_project
        return run_project(args)
    elif args.command == "data":
        from MVAEvaluationLib.datasets import export_standard_cases
        for name, image, labels, structures in export_standard_cases(args.output):
            print(f"{name}: --volume {image} --truth {labels}  labels {structures}")
        if args.variants:
            from MVAEvaluationLib.report_3d import export_suite_cases
            for family, name, image, labels, structure, label in export_suite_cases(args.output):
                print(f"{family} {name}: --volume {image} --truth {labels} --label {label}  ({structure})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
