"""Every rule of the FLS dataset (spec/dataset.md), in one package.

The HTMX stage forms and the CSV importer share it so that a value refused in one is refused in
the other, with the same words. It is pure Python: no Flask request, no database. Three modules:

- `values`: one value at a time. `parse_value(field, raw)` turns a form field or a CSV cell into
  the stored value or raises `ValueProblem` with the plain-words message; `format_value` spells
  a stored value for export.
- `record_checks`: the record as a whole. `check_record(patient, episode)` applies every
  cross-field rule and returns `{field: message}`, on the field the user must fix;
  `check_patient_dates` checks a change of the patient against all their episodes.
- `stages`: what the answers mean for the journey: `stage_status`, `stage_windows`,
  `missing_audited_fields` and the derived values (`age_on`, `aom_recommended`, `on_aom`).

Import from the package (`from portal.journey.rules import check_record`); the modules are
where each rule is written.
"""

from portal.journey.rules.record_checks import (
    AFTER_FRACTURE_DATES,
    EPISODE_DATES,
    EPISODE_REQUIRED,
    PATIENT_REQUIRED,
    check_patient_dates,
    check_record,
)
from portal.journey.rules.stages import (
    Record,
    age_on,
    aom_recommended,
    missing_audited_fields,
    on_aom,
    stage_fields_that_apply,
    stage_status,
    stage_windows,
)
from portal.journey.rules.values import (
    NOT_KNOWN,
    PARSEABLE_FIELDS,
    ValueProblem,
    clean_nhs_number,
    field_label,
    format_value,
    is_empty,
    nhs_check_digit,
    normalise_postcode,
    parse_value,
    parse_values,
    spaced_nhs_number,
    split_values,
    uk_date,
)

__all__ = [
    "AFTER_FRACTURE_DATES",
    "EPISODE_DATES",
    "EPISODE_REQUIRED",
    "NOT_KNOWN",
    "PARSEABLE_FIELDS",
    "PATIENT_REQUIRED",
    "Record",
    "ValueProblem",
    "age_on",
    "aom_recommended",
    "check_patient_dates",
    "check_record",
    "clean_nhs_number",
    "field_label",
    "format_value",
    "is_empty",
    "missing_audited_fields",
    "nhs_check_digit",
    "normalise_postcode",
    "on_aom",
    "parse_value",
    "parse_values",
    "spaced_nhs_number",
    "split_values",
    "stage_fields_that_apply",
    "stage_status",
    "stage_windows",
    "uk_date",
]
