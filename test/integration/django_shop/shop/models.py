"""The model of docs/follow-actions.md's Django section."""

from django.db import models

from celerysalt_pg.django import FollowActionsMixin


class Order(FollowActionsMixin, models.Model):
    status = models.CharField(max_length=20)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    on_change_rules = models.JSONField(default=list)
