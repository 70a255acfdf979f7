from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo


class SignInForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired("Enter your email address")])
    password = PasswordField("Password", validators=[DataRequired("Enter your password")])


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        description="At least 12 characters. A few unrelated words make a strong password.",
        validators=[DataRequired("Enter a new password")],
    )
    confirm = PasswordField(
        "Confirm new password",
        validators=[
            DataRequired("Enter the new password again"),
            EqualTo("password", "The two passwords do not match"),
        ],
    )


class ChangePasswordForm(SetPasswordForm):
    """The current password was asked for just before, on the confirm-it-is-you page."""


class ConfirmIdentityForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired("Enter your password")])
    code = StringField(
        "Security code",
        description="The 6-digit code from your authenticator app, or one of your recovery codes.",
        validators=[DataRequired("Enter the code from your authenticator app")],
    )


class SecondFactorForm(FlaskForm):
    code = StringField(
        "Security code",
        description="The 6-digit code from your authenticator app, or one of your recovery codes.",
        validators=[DataRequired("Enter the code from your authenticator app")],
    )


class EnrolForm(FlaskForm):
    code = StringField(
        "Security code",
        description="The 6-digit code your authenticator app shows for FLS Portal.",
        validators=[DataRequired("Enter the 6-digit code from your authenticator app")],
    )
