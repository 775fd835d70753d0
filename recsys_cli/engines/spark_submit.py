"""The `recsys` command as a file for `spark-submit`, which runs a Python file, not a console script.

    spark-submit --master yarn --deploy-mode client \
        "$(python -c 'import recsys_cli.engines.spark_submit as m; print(m.__file__)')" \
        train --engine spark --data DATA --artifacts ARTIFACTS

spark-submit's --master and --conf then hold (the [spark] settings fill in only what it leaves unset).
"""

from recsys_cli.cli import app

if __name__ == "__main__":
    app(prog_name="recsys")
