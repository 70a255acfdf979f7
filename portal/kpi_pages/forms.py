from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange


class HipFracturesForm(FlaskForm):
    """An admin records a service's hip fractures in a year (from the NHFD)."""

    service = SelectField("Service", validators=[InputRequired("Choose a service")])
    year = SelectField("Year", coerce=int, validators=[InputRequired("Choose a year")])
    hip_fractures = IntegerField(
        "Hip fractures in the year",
        description="From the National Hip Fracture Database (NHFD) for the service's hospital(s)",
        validators=[
            InputRequired("Enter the number of hip fractures as a whole number"),
            NumberRange(min=0, message="The number of hip fractures cannot be below 0"),
        ],
    )
