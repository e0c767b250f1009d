from django.db import migrations

from celerysalt_pg.django import AttachFollowActions


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [AttachFollowActions("order")]
