"""A function with dependencies: deploy it as it is. The server installs requirements.txt
(wheels only) with pip, in a confined builder, at deploy."""

import requests
from pydantic import BaseModel, ValidationError


class Order(BaseModel):
    id: int
    item: str


def handler(body):
    try:
        order = Order(**body).model_dump()
    except ValidationError as error:
        return {"statusCode": 422, "body": {"errors": error.error_count()}}
    url = requests.Request("GET", "https://example.com/orders", params={"id": order["id"]}).prepare().url
    return {"order": order, "url": url, "requests": requests.__version__}
