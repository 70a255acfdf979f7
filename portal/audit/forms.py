from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectField, StringField
from wtforms.validators import NumberRange, Optional, ValidationError


class AuditFilterForm(FlaskForm):
    """The audit page's filters: a GET form (no state change), so no CSRF token."""

    class Meta:
        csrf = False

    user = StringField("User's email", validators=[Optional()])
    entity_type = SelectField("Record type", validators=[Optional()], validate_choice=False)
    entity_id = IntegerField(
        "Record number",
        validators=[Optional(), NumberRange(min=1, message="Enter a record number of 1 or more")],
    )
    action = SelectField("Action", validators=[Optional()], validate_choice=False)
    date_from = DateField("From (YYYY-MM-DD)", validators=[Optional()])
    date_to = DateField("To (YYYY-MM-DD)", validators=[Optional()])

    def validate_date_to(self, field):
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The 'to' date must be the same as or after the 'from' date")
