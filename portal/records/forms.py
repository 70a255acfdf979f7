from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import RadioField
from wtforms.fields.choices import SelectChoice

APPLY_CHOICES = [
    SelectChoice("all", "All or nothing: import only if no row is refused"),
    SelectChoice("valid", "Import the rows that pass and leave out the refused ones"),
]


class UploadForm(FlaskForm):
    # The size and content are judged by the import service, not by the browser's file type.
    file = FileField(
        "CSV file",
        description=(
            "One row per fracture episode, canonical or FLS-DB question-code headers, "
            "UTF-8 or Windows-1252."
        ),
    )


class ApplyForm(FlaskForm):
    mode = RadioField(
        "What should happen to the refused rows?", choices=APPLY_CHOICES, default="all"
    )


class DiscardForm(FlaskForm):
    pass
