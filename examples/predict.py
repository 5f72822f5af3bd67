"""Classify an image with a pretrained member of the family, through timm and through transformers.

python examples/predict.py photo.jpg                                  # vipriors_resnet50 student from the Hub
python examples/predict.py photo.jpg --model hf-hub:ORG/NAME          # any pushed student
python examples/predict.py photo.jpg --model local-dir:runs/student/final --hf-model runs/student/final
"""

import argparse

import timm
import torch
from PIL import Image

import vipriors_hub  # noqa: F401  (registers the vipriors_* names with timm)


def main(argv: list[str] | None = None) -> list[tuple[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--model", default="vipriors_resnet50", help="timm name, hf-hub:ORG/NAME or local-dir:FOLDER")
    parser.add_argument("--hf-model", help="also run transformers' pipeline on this Hub id or folder")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)

    # timm: the model's pretrained cfg knows its input size, crop and normalisation.
    model = timm.create_model(args.model, pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    image = Image.open(args.image).convert("RGB")
    with torch.no_grad():
        probabilities = model(transform(image).unsqueeze(0)).softmax(dim=1)[0]
    names = model.pretrained_cfg.get("label_names") or [str(i) for i in range(len(probabilities))]
    scores, indices = probabilities.topk(min(args.top, len(probabilities)))
    predictions = [(names[i], s.item()) for s, i in zip(scores, indices, strict=True)]
    for name, score in predictions:
        print(f"timm          {name:<24} {score:.4f}")

    # transformers: the same checkpoint through TimmWrapper, no vipriors_hub needed.
    if args.hf_model:
        from transformers import pipeline

        for prediction in pipeline("image-classification", model=args.hf_model)(image, top_k=args.top):
            print(f"transformers  {prediction['label']:<24} {prediction['score']:.4f}")
    return predictions


if __name__ == "__main__":
    main()
