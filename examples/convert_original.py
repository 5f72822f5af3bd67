"""Import a checkpoint of the original research code into the family (weights-only loading).

python examples/convert_original.py moco_v2_800ep.pth.tar --output imported/teacher
python examples/convert_original.py student_best.pth.tar --num-classes 1000 --output imported/student
"""

import argparse

import timm

from vipriors_hub.hub import convert_checkpoint


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--architecture", default="vipriors_resnet50")
    parser.add_argument("--num-classes", type=int, default=0, help="0: the MoCo backbone; 1000: a student")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    report = convert_checkpoint(args.checkpoint, args.architecture, args.output, args.num_classes)
    print(f"{report['loaded']} tensors imported from keys under '{report['prefix']}'")
    model = timm.create_model(f"local-dir:{args.output}", pretrained=True)  # the folder loads like any other
    print(f"{args.output}: {type(model).__name__}, {model.num_classes} classes")
    return report


if __name__ == "__main__":
    main()
