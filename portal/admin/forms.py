from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange
from wtforms.widgets import CheckboxInput, ListWidget

from kpis.dataset import NATIONS

ROLE_CHOICES = [
    SelectChoice("clinician", "Clinician (FLS nurse or coordinator)"),
    SelectChoice("lead", "Service lead"),
    SelectChoice("admin", "Administrator"),
]


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class UserForm(FlaskForm):
    email = EmailField(
        "Email address", validators=[DataRequired("Enter an email address"), Length(max=254)]
    )
    display_name = StringField(
        "Name", validators=[DataRequired("Enter the user's name"), Length(max=200)]
    )
    role = RadioField("Role", choices=ROLE_CHOICES, validators=[InputRequired("Choose a role")])
    services = MultiCheckboxField(
        "Services",
        coerce=int,
        description="Membership of a service is what grants access to its patients.",
    )


class EditUserForm(UserForm):
    active = BooleanField("Account is active")


class ServiceForm(FlaskForm):
    code = StringField(
        "Code",
        description="3 letters or digits, for example BRD",
        validators=[DataRequired("Enter a service code")],
    )
    name = StringField("Name", validators=[DataRequired("Enter the service's name")])
    nation = SelectField("Nation", choices=[SelectChoice(n) for n in NATIONS])
    expected_caseload = IntegerField(
        "Expected caseload",
        description="Estimated fragility fractures per year in the catchment (KPI 2 denominator)",
        validators=[
            InputRequired("Enter the expected caseload as a whole number"),
            NumberRange(min=1, message="Expected caseload must be above 0"),
        ],
    )


class EditServiceForm(ServiceForm):
    active = BooleanField("Service is active")


class ConfirmForm(FlaskForm):
    """A form with nothing but its CSRF token, for buttons that change state."""
