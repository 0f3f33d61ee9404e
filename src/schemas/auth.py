"""Schemas for /api/auth."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from src.models.users import ROLES
from src.schemas.common import ObjectIdString, Password, UTCDateTime, bcrypt_length
from src.schemas.pagination import PageArgs, page_of, sort_validator

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.-]{3,32}$", error="3-32 letters, digits, '_', '.' or '-'.")


class LoginSchema(Schema):
    email = fields.Email(metadata={"example": "admin@smartcity.com"})
    username = fields.String(validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=[validate.Length(min=1), bcrypt_length],
                             metadata={"example": "admin123"})

    @validates_schema
    def one_identifier(self, data, **kwargs):
        if not data.get("email") and not data.get("username"):
            raise ValidationError("Give email or username.", "email")


class RefreshSchema(Schema):
    refresh_token = fields.String(load_default=None)


class LogoutSchema(Schema):
    refresh_token = fields.String(load_default=None)


class RegisterSchema(Schema):
    email = fields.Email(required=True)
    username = fields.String(validate=USERNAME)
    password = Password(required=True)
    role = fields.String(load_default="viewer", validate=validate.OneOf(ROLES))
    full_name = fields.String(validate=validate.Length(max=120), allow_none=True)


class ProfileUpdateSchema(Schema):
    """A user's own changes. Email is changed by an admin (PATCH /api/users/<id>): a self-service
    change would answer 409 for an address that exists, telling anyone which accounts exist."""
    username = fields.String(validate=USERNAME)
    full_name = fields.String(validate=validate.Length(max=120), allow_none=True)


class ChangePasswordSchema(Schema):
    current_password = fields.String(required=True, validate=[validate.Length(min=1), bcrypt_length])
    new_password = Password(required=True)


class UserSchema(Schema):
    id = ObjectIdString(attribute="_id", dump_only=True)
    email = fields.String()
    username = fields.String()
    role = fields.String()
    full_name = fields.String(allow_none=True)
    active = fields.Boolean()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    last_login_at = UTCDateTime(allow_none=True)


class AccessTokenSchema(Schema):
    access_token = fields.String()
    token_type = fields.String(metadata={"example": "Bearer"})
    expires_in = fields.Integer(metadata={"description": "access token lifetime in seconds"})


class TokenSchema(AccessTokenSchema):
    refresh_token = fields.String()
    user = fields.Nested(UserSchema)


class UserArgs(PageArgs):
    role = fields.String(validate=validate.OneOf(ROLES))
    active = fields.Boolean()
    sort = fields.String(load_default="-created_at", validate=sort_validator(("created_at", "email", "role")))


class UserUpdateSchema(Schema):
    """What an admin may change on an account."""
    role = fields.String(validate=validate.OneOf(ROLES))
    active = fields.Boolean(metadata={"description": "false signs the user out everywhere at once"})
    email = fields.Email()
    full_name = fields.String(validate=validate.Length(max=120), allow_none=True)


UserPageSchema = page_of(UserSchema, "UserPageSchema")
