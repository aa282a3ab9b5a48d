"""The `mva` command: demo, eval, bench, report. Thin: parse, build, call the library."""
import argparse
import os
import sys

os.environ.setdefault("ITK_GLOBAL_DEFAULT_THREADER", "Pool")


def build_parser():
    parser = argparse.ArgumentParser(prog="mva", description="SegmentAnythingMVA headless tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the smart tools on the bundled MNI T1 and write the results")
    demo.add_argument("--output", default="mva-output", help="output folder (default: %(default)s)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from MVACommandLineLib.demo import run_demo
        run_demo(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
