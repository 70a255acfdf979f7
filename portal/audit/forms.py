from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import NumberRange, Optional, ValidationError

from kpis.periods import EARLIEST_YEAR, LATEST_YEAR
from portal.query_values import LARGEST_ID


def _in_reach(field) -> None:
    """A date the trail can search from or to (the day after a date in year 9999 does not exist)."""
    if field.data and not EARLIEST_YEAR <= field.data.year <= LATEST_YEAR:
        raise ValidationError(f"Enter a date in a year from {EARLIEST_YEAR} to {LATEST_YEAR}")


class PlainDateField(DateField):
    """A date control whose refusal is in plain words, not WTForms' "Not a valid date value"."""

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError as refused:
            raise ValueError("Enter a real date, or leave this empty") from refused


class AuditFilterForm(FlaskForm):
    """The audit page's filters: a GET form (no state change), so no CSRF token."""

    class Meta:
        csrf = False

    user = StringField("User's email", validators=[Optional()])
    entity_type = SelectField("Record type", validators=[Optional()], validate_choice=False)
    entity_id = IntegerField(
        "Record number",
        validators=[
            Optional(),
            NumberRange(
                min=1,
                max=LARGEST_ID,
                message=f"Enter a record number from 1 to {LARGEST_ID}",
            ),
        ],
    )
    action = SelectField("Action", validators=[Optional()], validate_choice=False)
    # type="date" controls show the date in the browser's own way (issue 22: not "YYYY-MM-DD").
    date_from = PlainDateField("From date", validators=[Optional()])
    date_to = PlainDateField("To date", validators=[Optional()])

    def validate_date_from(self, field):
        _in_reach(field)

    def validate_date_to(self, field):
        _in_reach(field)
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The 'to' date must be the same as or after the 'from' date")
