"""Allow `python -m recon4d`."""

from recon4d.cli import main

raise SystemExit(main())
