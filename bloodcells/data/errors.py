"""The one exception type the data layer raises for problems a user can fix."""


class DataError(ValueError):
    """Bad or missing input data. The message always says what is wrong and how to fix it."""
