"""The adstream enrichment as an AWS Glue 5.0 streaming job (docs/aws.md).

Glue runs this file with the job's arguments (`--adstream-settings`, `--checkpoint-location`,
its own `--JOB_NAME`); adstream and the Python packages Glue lacks come from the job's
`--additional-python-modules`. `adstream package` writes it to dist/glue/ with the wheel and the
job arguments. Elsewhere: `python adstream_enrich.py --adstream-settings JSON
--checkpoint-location DIR [--bounded]`, with adstream installed.
"""

import sys

from adstream.enrich.glue import main

code = main(sys.argv)
if code:  # only a failure exits: Glue ends a job whose script returns
    sys.exit(code)
