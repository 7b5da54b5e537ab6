"""`detector train` and `detector eval` (issue 12): models that know the city's violations.

    offline    Ultralytics without a network: settings, fonts and the dataset's data.yaml in a work folder
    batchnorm  the shipped checkpoint's identity BatchNorm layers recalibrated on the dataset's frames
    train      recalibrate, fine-tune with Ultralytics' own trainer, export ONNX, evaluate, write the card
    evaluate   per-class AP50 and AP50-95 (COCO-style) of an ONNX model through the pipeline's backend
    card       the trained model's card, in the style of models/*.md

Ultralytics and torch are the optional extra `[ultralytics]`: only `train` imports them, inside
its functions, so the edge runtime never does. `evaluate` needs onnxruntime and pycocotools only.
"""
