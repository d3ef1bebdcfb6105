"""Train itryon: ``python train.py [--config configs/experiment/X.yaml] [key.sub=value ...]``."""

from itryon.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
