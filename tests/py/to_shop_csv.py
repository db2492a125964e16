"""Rewrites Taobao UserBehavior rows (user,item,category,behavior,unix seconds)
into the shop-export layout
    event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
with times like "2019-10-01 00:00:00 UTC". Every value comes from the Taobao
row: behavior pv -> view, cart -> cart, buy -> purchase, fav -> fav (the layout
has no favourite type; the name is kept); category_code, brand, price and
user_session are left empty (Taobao has none of them).
usage: to_shop_csv.py IN.csv OUT.csv"""
import sys
import time

TYPES = {"pv": "view", "cart": "cart", "buy": "purchase", "fav": "fav"}

with open(sys.argv[1], newline="") as src, open(sys.argv[2], "w", newline="") as dst:
    dst.write("event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n")
    for line in src:
        line = line.rstrip("\r\n")
        if not line:
            continue
        user, item, category, behavior, secs = line.split(",")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(secs)))
        dst.write(f"{when},{TYPES[behavior]},{item},{category},,,,{user},\n")
