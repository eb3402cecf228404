"""How the project runs by itself: declarative automation on every asset, and the job.

Every asset carries an automation condition, which Dagster's automation sensor,
``jaffle_automation``, evaluates every 30 s:

- ``raw_customers``, ``raw_orders``, ``raw_payments``: on a new file, and at 06:00 UTC every
  day. A raw table is requested once its file has a new data version (a new sha256, reported
  by ``raw_files_sensor`` once the file held still: ``dagster_project/defs/ingest/files.py``); the
  daily tick requests all three, whether or not a file changed.
- The dbt models and the chart: with what they read, in the same run, so write-audit-publish
  sees the whole change at once; and eager, after a run that rebuilt what they read without
  them (Materialize selected of a raw table alone).

The promises that rest on these conditions (each tested in tests/test_automation.py):

- **Once.** A table is requested once per new file, never while a run that targets it or what
  it reads is queued or in progress; a new file seen while one is waits for that run to end.
- **A data failure is not retried.** A failed blocking check, a failed dbt test or a file that
  does not parse fails the run, and the same files would fail the same way: nothing is
  requested again until a file changes. Fix the file, or fix the check and materialize by hand.
- **A lock or a killed run is retried.** A run automation launched carries ``RUN_TAGS``:
  a step that finds the warehouse held by another program tries again after 2, 4, 8, 16 and
  32 minutes (``dagster_project/warehouse/publish.py``); a run whose process died is run again,
  all of it, by Dagster's run retries (``run_retries`` in ``deploy/dagster.yaml``), at most twice.
  A run someone launched by hand is never retried: it fails at once, saying why.

Both sensors start STOPPED: `dagster dev` with the daemon would otherwise launch runs that
nobody asked for, writing to the DuckDB file someone is exploring. Turn on ``raw_files_sensor``
and ``jaffle_automation`` in the UI (Automation), or with `dagster sensor start`.
"""

from dagster import (
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    define_asset_job,
)

from dagster_project.defs.ingest.assets import RAW_KEYS
from dagster_project.defs.ingest.files import FILE_KEYS
from dagster_project.warehouse.publish import AUTOMATED, TRIGGER_TAG

DAILY_CRON = "0 6 * * *"

jaffle_shop_job = define_asset_job(
    "jaffle_shop_job",
    selection=AssetSelection.all(),
    description="Load the raw CSVs, run dbt build, and redraw the chart.",
)

# Dagster's eager(), written out for a raw table. eager() forgets a new file seen on the tick
# right after the table was requested or loaded: its "since last handled" resets on any of three
# events, their union carries no time, and without one a tie goes to the reset, so a file saved
# as a run starts would never be loaded. Reset by the request alone, which is timed, the later
# event wins. The price: a run someone launched by hand after a file changed is followed by one
# more, which loads and publishes the same data again.
ON_NEW_FILE = (
    AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).since(
        AutomationCondition.newly_requested()
    )
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
).with_label("on a new file")
# A raw table's only dependency is its file, ignored here: on_cron alone would wait for a new
# version after 06:00, and a file has one only when it changes.
DAILY = AutomationCondition.on_cron(DAILY_CRON).ignore(AssetSelection.assets(*FILE_KEYS.values()))
RAW_CONDITION = (ON_NEW_FILE | DAILY).with_label("on a new file, and daily at 06:00 UTC")
# With what they read, whatever else the tick holds (eager() alone loses that on the tick right
# after a run, by the same tie); and eager, for a change a run without them made.
WITH_WHAT_IT_READS = (
    AutomationCondition.any_deps_match(AutomationCondition.will_be_requested())
    & ~AutomationCondition.in_progress()
).with_label("with what it reads")
DOWNSTREAM_CONDITION = (WITH_WHAT_IT_READS | AutomationCondition.eager()).with_label(
    "with what it reads, or eager"
)

RUN_TAGS = {
    TRIGGER_TAG: AUTOMATED,
    # Dagster's run retries (enabled in deploy/dagster.yaml with no retries by default) run such
    # a run again when its process died; never after a failed step (retry_on_asset_or_op_failure
    # is false there), which is the data's or a lock's. All the steps, as write-audit-publish
    # needs: a re-execution from the failed step would publish models built on the published
    # raw tables while the retried run's raw steps recorded the new files.
    "dagster/max_retries": "2",
    "dagster/retry_strategy": "ALL_STEPS",
}


def automate(spec: AssetSpec) -> AssetSpec:
    """``spec`` with its automation condition (see the module's docstring); a file as it is."""
    if spec.key in FILE_KEYS.values():
        return spec
    condition = RAW_CONDITION if spec.key in RAW_KEYS else DOWNSTREAM_CONDITION
    return spec.replace_attributes(automation_condition=condition)


jaffle_automation = AutomationConditionSensorDefinition(
    "jaffle_automation",
    target=AssetSelection.all(),
    run_tags=RUN_TAGS,
    default_status=DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=30,
    description="Materializes what the raw files' changes (seen by raw_files_sensor) and the "
    "daily 06:00 UTC tick make out of date: each asset's automation condition says when.",
)
