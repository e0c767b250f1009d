"""Pydantic v2 models whose JSON Schema the benchmark validates against.

python models.py > order_schema.json regenerates the committed schema.
"""
import json
from datetime import datetime
from enum import Enum
from typing import Dict, List, Literal, Optional
from uuid import UUID

from pydantic import BaseModel, Field


class Status(str, Enum):
    pending = "pending"
    paid = "paid"
    shipped = "shipped"
    cancelled = "cancelled"


class Country(str, Enum):
    US = "US"
    DE = "DE"
    FR = "FR"
    GB = "GB"
    JP = "JP"


class Address(BaseModel):
    street: str = Field(min_length=1, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    zip: str = Field(pattern=r"^[0-9]{5}$")
    country: Country


class Customer(BaseModel):
    id: UUID
    name: str = Field(min_length=1, max_length=100)
    email: str = Field(json_schema_extra={"format": "email"})
    phone: Optional[str] = None


class LineItem(BaseModel):
    sku: str = Field(pattern=r"^[A-Z]{3}-[0-9]{4}$")
    quantity: int = Field(ge=1, le=1000)
    unit_price: float = Field(ge=0)


class Order(BaseModel):
    id: UUID
    created_at: datetime
    status: Status
    customer: Customer
    shipping_address: Address
    billing_address: Optional[Address] = None
    items: List[LineItem] = Field(min_length=1)
    total: float = Field(ge=0)
    currency: Literal["USD", "EUR", "GBP"]
    notes: Optional[str] = None
    priority: Optional[int] = Field(default=None, ge=0, le=10)
    tags: List[str] = []
    coupon: Optional[str] = None
    metadata: Dict[str, str] = {}
    version: int = 1


if __name__ == "__main__":
    print(json.dumps(Order.model_json_schema(), indent=2))
